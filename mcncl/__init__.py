"""MCN-CL emotion pipeline: command line, configuration and the demo corpus."""
