"""SparkPost side of the chain: the API client and the TrackingDomain dynamic resource."""
