"""What keeps a deployment private: keys (API keys, roles, rate limit), audit (the audit log),
integrity (weight manifests), output_filter (regexes that end an output). No torch."""
