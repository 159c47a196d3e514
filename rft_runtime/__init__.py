"""What runs inside the rft pods (and as local processes): serve, score, train."""
