"""DeepSeek operator: spec -> plan -> manifests -> apply -> status."""
