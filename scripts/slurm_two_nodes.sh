#!/bin/bash
# textgan on several machines under SLURM: one `accelerate launch` per node, each starting that node's
# processes (one per GPU); the processes of all nodes form one group at the first node. The run directory
# must be on a filesystem every node sees. Submitted again after a failure (or with --requeue), it resumes
# the run from its last checkpoint.
#
#   sbatch scripts/slurm_two_nodes.sh                       # NAME=... RUNS=... TASK=... to change the defaults
#
#SBATCH --job-name=textgan
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail

TASK=${TASK:-sentiment}
NAME=${NAME:-multinode}
RUNS=${RUNS:-$PWD/runs}                    # shared by every node (NFS, Lustre ...)
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
MAIN_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MAIN_PORT=${MAIN_PORT:-29500}

RUN_DIR="$RUNS/$TASK/$NAME"
if [ -d "$RUN_DIR/state" ]; then
    TEXTGAN_ARGS="train --resume $RUN_DIR"
else
    TEXTGAN_ARGS="train --task $TASK --runs-dir $RUNS --name $NAME"
fi

# $SLURM_NODEID is escaped: each task (node) reads its own.
srun bash -c "accelerate launch --quiet --multi_gpu \
    --num_machines $SLURM_NNODES --machine_rank \$SLURM_NODEID \
    --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \
    --main_process_ip $MAIN_HOST --main_process_port $MAIN_PORT \
    -m textgan $TEXTGAN_ARGS train.dist_timeout=1800"
