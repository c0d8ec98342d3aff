"""PCR labels for real images, from scarlet2 fits of a reference catalogue's sources."""
