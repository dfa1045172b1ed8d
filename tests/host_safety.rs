//! The host never notices the library: defects a safety review reproduced with small host
//! programs, each run once without and once with the library through the wrapper, comparing
//! exit status, results and output.

mod support;

use serde_json::json;
use support::scenario::Scenario;
use support::*;

#[test]
fn seccomp_filters_see_no_call_the_host_does_not_make() {
    // Container profiles answer calls they do not allow with SIGSYS or EPERM. The write hook
    // once peeked at the host's buffer with process_vm_readv: under "trap" the host died of
    // SIGSYS, under "errno" a bad pointer crashed it and a good write left errno EPERM.
    let seccomp = compile_program("seccomp_exec", "seccomp_exec", &[]);
    let runtime = compile_program("c_runtime", "c_runtime_seccomp", &["-O1"]);
    for mode in ["trap", "errno"] {
        let mut s = Scenario::new(
            vec![
                seccomp.display().to_string(),
                mode.into(),
                runtime.display().to_string(),
            ],
            root(),
        );
        s.compare_output = true;
        s.payloads = vec![
            json!({"action": "ok"}),
            json!({"action": "probe_writes"}),
            json!({"action": "ok"}),
        ];
        let out = s.check();
        let probe = out.sim.results()[1].clone().expect("result").body;
        assert_eq!(
            String::from_utf8_lossy(&probe),
            r#"{"bad":-1,"bad_errno":14,"errno_after":00}"#,
            "under {mode}: EFAULT for a bad pointer, errno untouched by a good write"
        );
    }
}
