//! Running an image from the command line.
