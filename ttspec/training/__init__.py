"""Training the torch programs."""
