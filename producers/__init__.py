"""Ways for agencies to publish change events: the publisher SDK and the simulator of the 52 agencies."""
