"""textgan: unsupervised text style transfer and translation with GANs.

    import textgan
    model = textgan.load("runs/sentiment/<run>")      # or textgan.load() for the newest sentiment run
    model.transfer(["the food was cold ."], to="pos")
"""

__version__ = "0.1.0"


def load(run_dir=None, task: str = "sentiment", device=None, engine: str = "torch", quantization: str = "int8",
         decode=()):
    """Load a trained run for inference (see textgan.transfer.StyleTransfer); engine "ctranslate2" runs the
    generators converted to int8 / int16 / float32 weights (textgan.fast); `decode`: "decode.key=value"
    overrides of the run's decode section."""
    from .transfer import load as _load

    return _load(run_dir, task, device, engine, quantization, decode)
