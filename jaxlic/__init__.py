"""jaxlic: learned image compression in JAX/Flax."""

__version__ = "0.1.0"

from jaxlic.errors import BitstreamError, ImageError, JaxlicError, ModelError
