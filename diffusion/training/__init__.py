"""Training on our own rendered data: ControlNets over (condition passes, rgb) pairs (``avatarcine train``)."""
