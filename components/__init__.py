"""Building blocks of the https-tracking program: config, Cloudflare component, SparkPost provider."""
