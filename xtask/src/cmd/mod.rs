//! The commands, one module each: `impl flags::<Command> { fn run }`. They are leaves: each
//! uses flags and the domain modules, never another command.

mod build_prod;
pub mod ci;
mod clean;
mod db;
pub mod deploy;
mod dev;
mod doctor;
mod down;
pub mod logs;
mod provision;
pub mod status;
mod verify;
