"""Building blocks shared by attacks: gradient computation, distances, priors, equations, rank analysis."""
