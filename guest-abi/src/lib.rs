//! The Xen 4.17 x86_64 PV guest interface.
#![no_std]
