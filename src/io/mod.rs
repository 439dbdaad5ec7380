//! Reading and writing the files of the data contract (docs/contract.md).

pub mod nifti;
pub mod table;
