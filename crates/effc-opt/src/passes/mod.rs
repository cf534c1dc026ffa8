mod activations;
mod conv_epilogue;
mod dead_code;
mod fold_batchnorm;
mod mbconv;
mod pad_into_conv;
mod squeeze_excite;
mod util;

pub use activations::RecognizeActivations;
pub use conv_epilogue::FuseConvEpilogue;
pub use dead_code::DeadCode;
pub use fold_batchnorm::FoldBatchNorm;
pub use mbconv::FormMbConv;
pub use pad_into_conv::MergePadIntoConv;
pub use squeeze_excite::DetectSqueezeExcite;
