//! Rendition's integration tests: one binary, real components (libvips, the real
//! `rendition` binary, a real filesystem; later RabbitMQ and an S3/SQS server on loopback).

mod harness;

mod backfill;
mod bombs;
mod config;
mod conformance;
mod fastpath;
mod fidelity;
mod gc;
mod hostile;
mod lambda;
mod lifecycle;
mod local;
mod markup;
mod observability;
mod outcomes;
mod progressive;
mod proxy;
mod rabbit;
mod removal;
mod render;
mod responsive;
mod s3;
mod serve;
mod shapes;
mod sheet;
mod sqs;
mod tolerance;
mod traces;
mod vectors;
mod versions;
