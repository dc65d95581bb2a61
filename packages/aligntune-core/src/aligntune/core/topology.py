"""The topology contract between whatever starts a multi-node job and the runner: the variables
that say where a process sits (as compose, Slurm and Kubernetes set them) and torchrun's default
rendezvous port. The launcher resolves them from its flags and passes them by value; the runner
reads them to start its worker group."""

NNODES = "NNODES"
"""How many machines take part."""
NODE_RANK = "NODE_RANK"
"""This machine's rank, from 0."""
MASTER_ADDR = "MASTER_ADDR"
"""Node 0's host name or address: where the nodes meet."""
MASTER_PORT = "MASTER_PORT"
"""The rendezvous port on node 0."""
DEFAULT_PORT = 29500
"""torchrun's default rendezvous port."""
