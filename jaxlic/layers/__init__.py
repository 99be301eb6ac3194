"""Neural network layers of jaxlic (NHWC, Flax linen)."""

from jaxlic.layers.attention import FDRAM, AttentionBlock
from jaxlic.layers.context import MaskedConv, anchor_mask, checkerboard_mask, serial_mask
from jaxlic.layers.deconv import SubpixelDeconv
from jaxlic.layers.gdn import GDN, IGDN
from jaxlic.layers.postprocess import PostProcess
from jaxlic.layers.residual import ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride
from jaxlic.layers.subpixel import SubpelConv, conv, depth_to_space, space_to_depth
