use std::time::Duration;
#[test]
#[ignore]
fn linux_as_domu() {
    let kernel = tests::debian::linux().unwrap();
    let out = tests::Boot::new()
        .cpu(tests::linux::CPU)
        .memory_mib(tests::linux::QEMU_MEMORY_MIB)
        .cmdline("domain=ctl,module=1,privileged domain=linux,module=2,mem=256")
        .guest("spin", "spin from_ms=0 to_ms=100000")
        .module(kernel, "console=hvc0 earlyprintk=xen loglevel=8")
        .timeout(Duration::from_secs(150))
        .try_run()
        .unwrap();
    std::fs::write("/tmp/domu-serial.log", &out.serial).unwrap();
}
