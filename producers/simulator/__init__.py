"""The simulated agencies: a city of facts (world), written in each agency's vocabulary (render), as a stream of
events with realistic dirt (script), and the ground truth the bus must produce from it (truth)."""
