mod activations;
mod channel_affine;
mod conv_epilogue;
mod dead_code;
mod mbconv;
mod pad_into_conv;
mod reshapes;
mod squeeze_excite;
mod util;

pub use activations::RecognizeActivations;
pub use channel_affine::{FoldBatchNorm, FoldChannelAffine};
pub use conv_epilogue::FuseConvEpilogue;
pub use dead_code::DeadCode;
pub use mbconv::{FormMbConv, Unfused, explain_unfused};
pub use pad_into_conv::MergePadIntoConv;
pub use reshapes::CollapseReshapes;
pub use squeeze_excite::DetectSqueezeExcite;
