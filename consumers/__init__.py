"""Consumers: the materializer of unified topics into PostgreSQL."""
