mod dead_code;
mod pad_into_conv;

pub use dead_code::DeadCode;
pub use pad_into_conv::MergePadIntoConv;
