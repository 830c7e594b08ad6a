"""The training phases as objects, each owning its `step(seqs_a, seqs_b) -> logs` and reading the trainer
(`textgan.trainer.Trainer`) as its context `ctx`; the loop (Trainer.fit) picks the phase by step:

    common.py       the context's tools every phase uses (StepTools): batches, noise, stacks of both
                    directions, length control, the likelihood terms, decoded transfers, the update
    likelihood.py   Autoencoder, Bootstrap; on-the-fly back-translation
    adversarial.py  DiscriminatorPretraining, Adversarial (G step, D steps, rewards, baselines)
    evaluation.py   DevEvaluation: the periodic dev evaluation and the kept checkpoint (train.keep_best,
                    train.select_by)
    teacher.py      TeacherMiner: a trained run's decode as a miner (train.bootstrap=teacher)
    rounds.py       self-training rounds (textgan refine, train.rounds) and distillation (textgan distill),
                    each a training run (runner.train) on a teacher's pairs
"""
