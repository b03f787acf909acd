"""Running generated programs: torch reference, ttnn goldens, ttnn mock device, hardware."""
