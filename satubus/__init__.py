"""Satu Data Bus plumbing: settings, Kafka client configuration, metrics and the CLI entry point."""
