"""Client protocols: each door parses its protocol, runs the pipeline and renders the answer."""
