"""The training phases' steps and the dev evaluation, mixins of `textgan.trainer.Trainer`:

    common.py       what every step uses: batches, noise, stacks of both directions, length control, update
    likelihood.py   the autoencoder and bootstrap steps, on-the-fly back-translation
    adversarial.py  the discriminator and generator steps of the adversarial phases, rewards, baselines
    evaluation.py   the periodic dev evaluation and the kept checkpoint (train.keep_best, train.select_by)
"""
