"""Stream processors (faust): decode, validate and normalize agency events into unified topics."""
