"""The world the tests run in: loopback emulators of SparkPost's and Cloudflare's APIs, and the network
pieces around them (DNS servers, TLS peers). `components/` never imports this package; the tests, the
benchmark and the sandbox share it. Every server here binds loopback only."""
