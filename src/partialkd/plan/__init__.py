"""What runs: params.yaml's checks, the job matrix and each step's code dependencies."""
