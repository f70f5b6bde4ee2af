"""The container engine: daemon start, images, host facts, containers, doctor."""
