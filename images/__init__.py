"""Image recipes (Dockerfiles and package lists), shipped inside the wheel as `runner._images`."""
