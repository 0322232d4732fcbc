"""Building blocks shared by attacks: gradient computation, distances, label rules."""
