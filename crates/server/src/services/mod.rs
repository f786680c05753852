//! Account services shared by the npm API, the website and the admin CLI.

pub mod security_log;
