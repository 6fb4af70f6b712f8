"""Development helpers shared by tests, benchmarks and demos; never imported by the program."""
