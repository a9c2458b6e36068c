/* The schema: every diagnostic with its text and location, defaults,
 * units, provisioners' checks and the canonical form. */
#include "helpers.h"

#define HEAD "vab: 1\nname: web\nsource: {bootstrap: {suite: bookworm}}\n"

struct diag_case {
  const char *yaml;
  unsigned line, column;
  const char *message;
  const char *hint;   /* NULL: not checked; "": none */
};

static const struct diag_case cases[] = {
  {"vab: 2\nname: web\nsource: {bootstrap: {}}\n", 1, 6,
   "unsupported template language version '2': this vab reads version 1",
   "write 'vab: 1'"},
  {"vab: 1\nsource: {bootstrap: {}}\n", 1, 1, "a template needs 'name'",
   "for example: name: web"},
  {"vab: 1\nname: web\n", 1, 1, "a template needs 'source'",
   "for example: source: {bootstrap: {suite: bookworm}}"},
  {"vab: 1\nname: ../etc\nsource: {bootstrap: {}}\n", 2, 7,
   "invalid name '../etc': use 1 to 64 of a-z, 0-9, '.', '_' and '-', "
   "starting with a letter or digit",
   "the name becomes part of file names, so it cannot hold '/' or '..'"},
  {"vab: 1\nname: a.b/c\nsource: {bootstrap: {}}\n", 2, 7,
   "invalid name 'a.b/c': use 1 to 64 of a-z, 0-9, '.', '_' and '-', "
   "starting with a letter or digit", NULL},
  {HEAD "version: 1/2\n", 4, 10,
   "invalid version '1/2': use 1 to 64 of letters, digits, '.', '_', '+', "
   "'~' and '-', starting with a letter or digit", ""},
  {HEAD "sorce: x\n", 4, 1, "unknown key 'sorce' in the template",
   "did you mean 'source'?"},
  {"vab: 1\nname: web\nsource: {bootstrap: {}, rootfs: {path: x}}\n", 3, 9,
   "source needs exactly one of bootstrap, rootfs or image, not 2", ""},
  {"vab: 1\nname: web\nsource: {bootstrap: {suite: bookworm, "
   "pakages: [nginx]}}\n", 3, 39,
   "unknown key 'pakages' in source.bootstrap", "did you mean 'packages'?"},
  {"vab: 1\nname: web\nsource: {bootstrap: {packages: [\"Bad Name\"]}}\n", 3,
   33, "'Bad Name' is not a valid package name",
   "use a Debian package name (lowercase letters, digits, '+', '-' and '.'), "
   "optionally with :ARCH and =VERSION"},
  {"vab: 1\nname: web\nsource: {bootstrap: {distro: debain}}\n", 3, 30,
   "unknown source.bootstrap.distro 'debain'", "did you mean 'debian'?"},
  {"vab: 1\nname: web\nsource: {rootfs: {path: files/rootfs.tar, "
   "checksum: \"md5:abc\"}}\n", 3, 53,
   "source.rootfs.checksum must be 'sha256:' and 64 hex digits, not "
   "'md5:abc'", "get it with: sha256sum FILE"},
  {"vab: 1\nname: web\nsource: {rootfs: {path: nope.tar}}\n", 3, 25,
   "rootfs 'nope.tar' does not exist", ""},
  {"vab: 1\nname: web\nsource: {image: {format: qcow2}}\n", 3, 17,
   "source.image needs 'path'", "for example: path: base.qcow2"},
  {HEAD "disk: {size: 4GB}\n", 4, 14,
   "'disk.size' must be a size such as 512M, 4G, 4GiB or a number of bytes, "
   "not '4GB'", "sizes are binary: write 4G or 4GiB"},
  {HEAD "disk: {size: 100M}\n", 4, 14,
   "disk.size must be from 1G to 64T, not '100M'", ""},
  {HEAD "disk: {firmware: efi}\n", 4, 18, "unknown disk.firmware 'efi'",
   "did you mean 'uefi'?"},
  {HEAD "disk: {filesystem: btrfs}\n", 4, 20,
   "unknown disk.filesystem 'btrfs'", "expected one of: ext4, xfs"},
  {HEAD "disk: [4G]\n", 4, 7, "'disk' must be a mapping, not a list", ""},
  {HEAD "hardware: {memory: lots}\n", 4, 20,
   "'hardware.memory' must be a size such as 512M, 4G, 4GiB or a number of "
   "bytes, not 'lots'", ""},
  {HEAD "hardware: {cpus: two}\n", 4, 18,
   "'hardware.cpus' must be a whole number from 0 to 128, not 'two'", ""},
  {HEAD "hardware: {nic_model: e1000e}\n", 4, 23,
   "unknown hardware.nic_model 'e1000e'", "did you mean 'e1000'?"},
  {HEAD "provisioners: [{type: shel, inline: [x]}]\n", 4, 23,
   "unknown provisioner type 'shel'", "did you mean 'shell'?"},
  {HEAD "provisioners: [{type: puppet}]\n", 4, 23,
   "unknown provisioner type 'puppet'",
   "expected one of: file, shell, packages, users, hostname, timezone, "
   "services, firstboot, ansible, reboot"},
  {HEAD "provisioners: [{type: ansibel, playbook: ansible/site.yml}]\n", 4,
   23, "unknown provisioner type 'ansibel'", "did you mean 'ansible'?"},
  {HEAD "provisioners: [{type: file, sorce: a, destination: /x}]\n", 4, 29,
   "unknown key 'sorce' in 'file' step", "did you mean 'source'?"},
  {HEAD "provisioners: [shell]\n", 4, 16,
   "a provisioner step must be a mapping with a 'type', not a single value",
   ""},
  {HEAD "provisioners: [{inline: [x]}]\n", 4, 16,
   "a provisioner step needs 'type'", "for example: type: shell"},
  {HEAD "provisioners: {type: shell}\n", 4, 15,
   "'provisioners' must be a list, not a mapping",
   "start each item with '- '"},
  {HEAD "provisioners: [{type: file, content: x, destination: etc/x}]\n", 4,
   54, "destination must be an absolute path in the guest, not 'etc/x'", ""},
  {HEAD "provisioners: [{type: file, content: x, destination: /a/../b}]\n",
   4, 54, "destination must not contain '..': '/a/../b'", ""},
  {HEAD "provisioners: [{type: file, source: nope.html, destination: /x}]\n",
   4, 37, "source 'nope.html' cannot be read: No such file or directory",
   "relative paths start from the template's folder"},
  {HEAD "provisioners: [{type: file, content: x, destination: /x, "
   "mode: 644x}]\n", 4, 64,
   "mode must be an octal string such as \"0644\", not '644x'",
   "three or four digits from 0 to 7, quoted"},
  {HEAD "provisioners: [{type: file, content: x, destination: /x, "
   "owner: \"Root\"}]\n", 4, 65,
   "owner must be USER or USER:GROUP (names or numbers), not 'Root'", ""},
  {HEAD "provisioners: [{type: file, destination: /x}]\n", 4, 16,
   "a file step needs 'source' or 'content'", ""},
  {HEAD "provisioners: [{type: shell, inline: [x], "
   "script: scripts/setup.sh}]\n", 4, 43,
   "a shell step takes 'inline' or 'script', not both", ""},
  {HEAD "provisioners: [{type: shell, script: nope.sh}]\n", 4, 38,
   "script 'nope.sh' cannot be read: No such file or directory",
   "relative paths start from the template's folder"},
  {HEAD "provisioners: [{type: shell, inline: [x], env: {1A: b}}]\n", 4, 49,
   "'1A' is not a valid environment variable name", ""},
  {HEAD "provisioners: [{type: packages, install: [curl], "
   "remove: [curl]}]\n", 4, 59, "'curl' is both installed and removed", ""},
  {HEAD "provisioners: [{type: packages}]\n", 4, 16,
   "a packages step needs packages to 'install' or 'remove'", ""},
  {HEAD "provisioners: [{type: users, users: [{name: Admin}]}]\n", 4, 45,
   "'Admin' is not a valid user name",
   "use up to 32 of a-z, 0-9, '_' and '-', starting with a letter or '_'"},
  {HEAD "provisioners: [{type: users, users: [{name: root, "
   "password: s3cret}]}]\n", 4, 38,
   "root gets a password, but root is locked",
   "add 'lock_root: false' to this step to unlock it"},
  {HEAD "provisioners: [{type: users, users: [{name: a, password: x, "
   "password_hash: \"$6$s$h\"}]}]\n", 4, 76,
   "user 'a' has both 'password' and 'password_hash'; give one", ""},
  {HEAD "provisioners: [{type: users, users: [{name: a, "
   "password_hash: plain}]}]\n", 4, 63,
   "the password_hash of 'a' is not in crypt(3) format",
   "make one with: mkpasswd -m sha-512, or use 'password' and let vab hash "
   "it"},
  {HEAD "provisioners: [{type: users, users: [{name: a, "
   "ssh_authorized_keys: [\"ssh-ed25519\"]}]}]\n", 4, 70,
   "not an SSH public key line: expected 'TYPE BASE64 [comment]' as in "
   "~/.ssh/id_ed25519.pub", ""},
  {HEAD "provisioners: [{type: users, users: [{name: a, sudo: yes please}]}]\n",
   4, 54, "'sudo' must be true or false, not 'yes please'", ""},
  {HEAD "provisioners: [{type: users, users: [{name: a}, {name: a}]}]\n", 4,
   56, "user 'a' is listed twice", ""},
  {HEAD "provisioners: [{type: hostname, hostname: web_1}]\n", 4, 43,
   "'web_1' is not a valid host name",
   "use letters, digits and '-' in labels of up to 63 characters, "
   "separated by dots"},
  {HEAD "provisioners: [{type: timezone, timezone: Madrid}]\n", 4, 43,
   "'Madrid' does not look like a time zone",
   "use Area/City as in the tz database, for example Europe/Madrid, or UTC"},
  {HEAD "provisioners: [{type: services, enable: [\"../x\"]}]\n", 4, 42,
   "'../x' is not a systemd unit name", ""},
  {HEAD "provisioners: [{type: services, enable: [ssh], mask: "
   "[ssh.service]}]\n", 4, 55, "'ssh.service' is listed twice (in enable "
   "and mask)", ""},
  {HEAD "provisioners: [{type: firstboot}]\n", 4, 16,
   "a firstboot step needs 'script' or 'inline'", ""},
  {HEAD "provisioners: [{type: ansible}]\n", 4, 16,
   "an ansible step needs 'playbook', the playbook's host path",
   "for example: playbook: ansible/site.yml"},
  {HEAD "provisioners: [{type: ansible, playbook: nope.yml}]\n", 4, 42,
   "playbook 'nope.yml' cannot be read: No such file or directory",
   "relative paths start from the template's folder"},
  {HEAD "provisioners: [{type: ansible, playbook: ansible}]\n", 4, 42,
   "playbook 'ansible' is not a regular file", ""},
  {HEAD "provisioners: [{type: ansible, playbook: ansible/site.yml, "
   "extra_vars: [a]}]\n", 4, 72, "extra_vars must be a mapping of NAME: value",
   "for example: extra_vars: {site_title: Welcome}"},
  {HEAD "provisioners: [{type: ansible, playbook: ansible/site.yml, "
   "become: maybe}]\n", 4, 68, "'become' must be true or false, not 'maybe'",
   ""},
  {HEAD "provisioners: [{type: ansible, playbook: ansible/site.yml, "
   "tags: [web, \"a,b\"]}]\n", 4, 72,
   "'a,b' is not a tag: tags are not empty and hold no ','", ""},
  {HEAD "provisioners: [{type: ansible, playbook: ansible/site.yml, "
   "galaxy_file: nope.yml}]\n", 4, 73,
   "galaxy_file 'nope.yml' cannot be read: No such file or directory", NULL},
  {HEAD "provisioners: [{type: reboot, force: true}]\n", 4, 31,
   "unknown key 'force' in 'reboot' step", "expected one of: type, timeout"},
  {HEAD "sysprep: maybe\n", 4, 10, "'sysprep' must be true or false, not "
   "'maybe'", "write 'sysprep: false' to turn it off, or a mapping with "
   "'operations' and 'keep'"},
  {HEAD "sysprep: {keep: [machineid]}\n", 4, 18,
   "unknown sysprep operation 'machineid'", "did you mean 'machine-id'?"},
  {HEAD "sysprep: {opertions: default}\n", 4, 11,
   "unknown key 'opertions' in sysprep", "did you mean 'operations'?"},
  {HEAD "tests: [{boot: {tcp: {port: 70000}}}]\n", 4, 29,
   "'tests.boot.tcp.port' must be a whole number from 0 to 65535, not "
   "'70000'", ""},
  {HEAD "tests: [{boot: {http: {path: index.html}}}]\n", 4, 30,
   "tests.boot.http.path must start with '/', not 'index.html'", ""},
  {HEAD "tests: [{boot: {timeout: 10 minutes, serial: login}}]\n", 4, 26,
   "'tests.boot.timeout' must be a duration such as 90s, 5m or 1h30m, not "
   "'10 minutes'", ""},
  {HEAD "tests: [{boot: {timeout: 5m}}]\n", 4, 16,
   "a boot test needs at least one check: http, tcp or serial",
   "for example: boot: {tcp: {port: 22}}"},
  {HEAD "tests: [{smoke: {}}]\n", 4, 10, "unknown key 'smoke' in a test",
   "expected one of: boot"},
  {HEAD "outputs: [{format: qcow3}]\n", 4, 20, "unknown output format 'qcow3'",
   "did you mean 'qcow2'?"},
  {HEAD "outputs: [{format: qcow2, compression: lz4}]\n", 4, 40,
   "qcow2 option compression must be none, zlib, deflate or zstd, not 'lz4'",
   ""},
  {HEAD "outputs: [{format: raw, compression: zlib}]\n", 4, 38,
   "raw option compression must be none or zstd, not 'zlib'", ""},
  {HEAD "outputs: [{format: qcow2, cluster_size: 1000}]\n", 4, 41,
   "qcow2 option cluster_size must be a power of two from 512 to 2097152 "
   "bytes, not '1000'",
   ""},
  {HEAD "outputs: [{format: qcow2, level: 30}]\n", 4, 34,
   "qcow2 option level must be a number from 1 to 22, not '30'", ""},
  {HEAD "outputs: [{format: vhd, subformat: dynamic}]\n", 4, 36,
   "vhd option subformat must be fixed, not 'dynamic'", ""},
  {HEAD "outputs: [{format: qcow2, dedup: sure}]\n", 4, 34,
   "qcow2 option dedup must be 'on' or 'off', not 'sure'", ""},
  {HEAD "outputs: [{format: ova, target: esxi}]\n", 4, 33,
   "ova option target must be vmware or virtualbox, not 'esxi'", ""},
  {HEAD "outputs: [{format: vmdk, subformat: streamoptimized}]\n", 4, 37,
   "vmdk option subformat must be streamOptimized or monolithicSparse, "
   "not 'streamoptimized'",
   "did you mean 'streamOptimized'?"},
  {HEAD "outputs: [{format: vhd, compression: zstd}]\n", 4, 25,
   "unknown key 'compression' in 'vhd' output",
   "expected one of: format, subformat, vm"},
  {HEAD "outputs: [qcow2]\n", 4, 11,
   "an output must be a mapping, not a single value",
   "write '- format: qcow2'"},
  {HEAD "outputs: [{format: raw}, {format: raw, compression: zstd}]\n", 4, 26,
   "a second 'raw' output: each format is written once "
   "(only 'ova' may repeat, once per target)", ""},
  {HEAD "sign: {cert: c.pem}\n", 4, 7, "sign needs 'key'",
   "for example: key: keys/release.key"},
  {HEAD "publish: [{ref: \"Reg/Web\"}]\n", 4, 17,
   "reference 'Reg/Web': repository 'Web' is not valid (lowercase letters, "
   "digits and . _ - separators, '/' between parts)", NULL},
  {HEAD "publish: [{ref: reg.example/a, tags: [\"-x\"]}]\n", 4, 39,
   "'-x' is not a valid tag: up to 128 letters, digits, '.', '_' and '-', "
   "not starting with '.' or '-'", ""},
  {HEAD "publish: {ref: reg.example/a}\n", 4, 10,
   "'publish' must be a list, not a mapping", "start each item with '- '"},
};

/* Every case runs, and every mismatch is printed, before the test fails. */
static void test_each_diagnostic(void **state) {
  (void)state;
  size_t failures = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct diag_case *c = &cases[i];
    struct vab_ctx *ctx = vab_ctx_new();
    struct vab_template *t = load_text(ctx, c->yaml, NULL);
    const struct vab_diag *d = vab_diag_get(ctx, 0);
    bool ok = t == NULL && d != NULL && d->severity == VAB_SEV_ERROR &&
              d->file != NULL && strcmp(d->file, "t.yaml") == 0 &&
              d->line == c->line && d->column == c->column &&
              strcmp(d->message, c->message) == 0 &&
              d->source_line != NULL;
    if (ok && c->hint != NULL && c->hint[0] == '\0')
      ok = d->hint == NULL;
    else if (ok && c->hint != NULL)
      ok = d->hint != NULL && strcmp(d->hint, c->hint) == 0;
    if (!ok) {
      failures++;
      fprintf(stderr, "case %zu: %s  want %u:%u %s | %s\n", i, c->yaml,
              c->line, c->column, c->message, c->hint ? c->hint : "-");
      dump_diags(ctx);
    }
    vab_template_free(t);
    vab_ctx_free(ctx);
  }
  assert_int_equal(failures, 0);
}

static void test_all_problems_in_one_run(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx,
      "vab: 1\nname: web\nsource: {bootstrap: {}}\n"
      "disk: {size: 4GB, firmware: efi}\n"
      "provisioners: [{type: shel}, {type: timezone, timezone: x}]\n"
      "outputs: [{format: qcow3}]\n", NULL));
  assert_int_equal(vab_error_count(ctx), 5);
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 4, 14,
              "'disk.size' must be a size such as 512M, 4G, 4GiB or a "
              "number of bytes, not '4GB'", NULL);
  expect_diag(ctx, 1, VAB_SEV_ERROR, "t.yaml", 4, 29,
              "unknown disk.firmware 'efi'", NULL);
  expect_diag(ctx, 2, VAB_SEV_ERROR, "t.yaml", 5, 23,
              "unknown provisioner type 'shel'", NULL);
  expect_diag(ctx, 3, VAB_SEV_ERROR, "t.yaml", 5, 57,
              "'x' does not look like a time zone", NULL);
  expect_diag(ctx, 4, VAB_SEV_ERROR, "t.yaml", 6, 20,
              "unknown output format 'qcow3'", NULL);
  vab_ctx_free(ctx);
}

/* Found by the fuzzer: a rejected duplicate output left its option count
 * in the slot the next output reused. */
static void test_output_after_a_duplicate(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx, HEAD
      "outputs:\n"
      "  - {format: vmdk, subformat: streamOptimized, hwversion: 13, "
      "level: 9}\n"
      "  - {format: vmdk, subformat: monolithicSparse, adapter_type: ide, "
      "hwversion: 13, level: 9}\n"
      "  - {format: ova}\n", NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 6, 5,
              "a second 'vmdk' output: each format is written once "
   "(only 'ova' may repeat, once per target)", "");
  expect_diag(ctx, 1, VAB_SEV_NOTE, "t.yaml", 5, 5,
              "the first 'vmdk' output is here", "");
  vab_diag_clear(ctx);
  /* One OVA per target is allowed; a second OVA for one target is not. */
  struct vab_template *t = load_text(ctx, HEAD
      "outputs:\n  - {format: ova, target: vmware}\n"
      "  - {format: ova, target: virtualbox}\n", NULL);
  assert_non_null(t);
  assert_int_equal(t->n_outputs, 2);
  assert_string_equal(t->outputs[1].target, "virtualbox");
  vab_template_free(t);
  assert_null(load_text(ctx, HEAD
      "outputs:\n  - {format: ova}\n  - {format: ova, target: vmware}\n",
      NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 6, 5,
              "a second 'ova' output for target 'vmware': each target is "
              "written once", "");
  vab_diag_clear(ctx);
  /* A second OVA whose target is itself wrong: one error, no crash (the
   * template fuzzer found this). */
  assert_null(load_text(ctx, HEAD
      "outputs:\n  - {format: ova}\n  - {format: ova, target: esxi}\n",
      NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 6, 27,
              "ova option target must be vmware or virtualbox, not 'esxi'",
              "");
  vab_diag_clear(ctx);
  t = load_text(ctx, HEAD
      "outputs: [{format: qcow2, compression: zstd, level: 3, dedup: on}, "
      "{format: raw}]\n", NULL);
  assert_non_null(t);
  assert_int_equal(t->outputs[1].n_options, 0);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_defaults_are_filled(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t =
      load_text(ctx, "vab: 1\nname: mini\nsource: {bootstrap: }\n", NULL);
  assert_non_null(t);
  assert_string_equal(t->version, "0");
  assert_null(t->description);
  assert_int_equal(t->source.kind, VAB_SOURCE_BOOTSTRAP);
  assert_string_equal(t->source.distro, "debian");
  assert_string_equal(t->source.suite, "bookworm");
  assert_string_equal(t->source.mirror, "http://deb.debian.org/debian");
  assert_string_equal(t->source.variant, "minbase");
  assert_int_equal(t->source.n_packages, 0);
  assert_non_null(t->source.packages);
  assert_null(t->source.packages[0]);
  assert_int_equal(t->disk.size, 4ull << 30);
  assert_int_equal(t->disk.partitions, VAB_PART_GPT);
  assert_int_equal(t->disk.filesystem, VAB_FS_EXT4);
  assert_int_equal(t->disk.firmware, VAB_FW_BIOS);
  assert_int_equal(t->hardware.cpus, 2);
  assert_int_equal(t->hardware.memory, 2ull << 30);
  assert_int_equal(t->hardware.nics, 1);
  assert_string_equal(t->hardware.disk_bus, "scsi");
  assert_string_equal(t->hardware.nic_model, "auto");
  assert_int_equal(t->n_steps, 0);
  assert_true(t->sysprep.enabled);
  assert_int_equal(t->sysprep.n_operations, 9);
  assert_string_equal(t->sysprep.operations[0], "machine-id");
  assert_string_equal(t->sysprep.operations[8], "trim");
  assert_int_equal(t->n_tests, 0);
  assert_int_equal(t->n_outputs, 1);
  assert_string_equal(t->outputs[0].format, "qcow2");
  assert_int_equal(t->outputs[0].n_options, 0);
  assert_null(t->sign);
  assert_int_equal(t->n_publish, 0);
  assert_string_equal(t->path, "t.yaml");
  assert_string_equal(t->dir, DATA_DIR);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_typed_values(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load_text(ctx,
      "vab: 1\nname: full\nversion: 1.2.3\ndescription: All of it\n"
      "source: {image: {path: files/rootfs.tar, checksum: \"sha256:"
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\", "
      "format: raw}}\n"
      "disk: {size: 10GiB, partitions: mbr, filesystem: xfs, firmware: both}\n"
      "hardware: {cpus: 4, memory: 512M, nics: 2, disk_bus: sata, "
      "nic_model: vmxnet3}\n"
      "sysprep: {operations: default, keep: [logs, trim]}\n"
      "tests: [{boot: {timeout: 1m30s, http: {port: 8080, contains: Hi}, "
      "tcp: {port: 22}, serial: \"login:\"}}]\n"
      "outputs:\n"
      "  - {format: qcow2, compression: zstd, level: 3, dedup: true, "
      "cluster_size: 64K}\n"
      "  - {format: ova}\n"
      "  - {format: vmdk, subformat: monolithicSparse, adapter_type: ide, "
      "hwversion: 13}\n"
      "sign: {key: keys/release.key, cert: /etc/release.crt}\n"
      "publish: [{ref: \"reg.example:5000/a/full\"}]\n", NULL);
  if (t == NULL)
    dump_diags(ctx);
  assert_non_null(t);
  assert_string_equal(t->description, "All of it");
  assert_int_equal(t->source.kind, VAB_SOURCE_IMAGE);
  assert_string_equal(t->source.path, DATA_DIR "/files/rootfs.tar");
  assert_string_equal(t->source.format, "raw");
  assert_int_equal(t->disk.size, 10ull << 30);
  assert_int_equal(t->disk.partitions, VAB_PART_MBR);
  assert_int_equal(t->disk.filesystem, VAB_FS_XFS);
  assert_int_equal(t->disk.firmware, VAB_FW_BOTH);
  assert_int_equal(t->hardware.cpus, 4);
  assert_int_equal(t->hardware.memory, 512ull << 20);
  assert_int_equal(t->hardware.nics, 2);
  assert_string_equal(t->hardware.disk_bus, "sata");
  assert_string_equal(t->hardware.nic_model, "vmxnet3");
  assert_int_equal(t->sysprep.n_operations, 7);
  assert_int_equal(t->sysprep.n_keep, 2);
  assert_string_equal(t->sysprep.keep[1], "trim");
  for (size_t i = 0; i < t->sysprep.n_operations; i++)
    assert_string_not_equal(t->sysprep.operations[i], "logs");
  assert_int_equal(t->n_tests, 1);
  assert_int_equal(t->tests[0].timeout_ms, 90000);
  assert_true(t->tests[0].has_http);
  assert_int_equal(t->tests[0].http_port, 8080);
  assert_string_equal(t->tests[0].http_path, "/");
  assert_int_equal(t->tests[0].http_status, 200);
  assert_string_equal(t->tests[0].http_contains, "Hi");
  assert_true(t->tests[0].has_tcp);
  assert_int_equal(t->tests[0].tcp_port, 22);
  assert_string_equal(t->tests[0].serial, "login:");
  assert_int_equal(t->n_outputs, 3);
  const struct vab_output_spec *q = &t->outputs[0];
  assert_int_equal(q->n_options, 4);
  assert_string_equal(q->options[0].key, "compression");
  assert_string_equal(q->options[0].value, "zstd");
  assert_string_equal(q->options[1].key, "level");
  assert_string_equal(q->options[1].value, "3");
  assert_string_equal(q->options[2].key, "dedup");
  assert_string_equal(q->options[2].value, "on");
  assert_string_equal(q->options[3].key, "cluster_size");
  assert_string_equal(q->options[3].value, "65536");
  assert_null(q->target);
  assert_string_equal(t->outputs[1].target, "vmware");
  assert_int_equal(t->outputs[1].n_options, 0);
  assert_int_equal(t->outputs[2].n_options, 3);
  assert_string_equal(t->outputs[2].options[2].value, "13");
  assert_non_null(t->sign);
  assert_string_equal(t->sign->key, DATA_DIR "/keys/release.key");
  assert_string_equal(t->sign->cert, "/etc/release.crt");
  assert_int_equal(t->n_publish, 1);
  assert_string_equal(t->publish[0].ref, "reg.example:5000/a/full");
  assert_int_equal(t->publish[0].n_tags, 1);
  assert_string_equal(t->publish[0].tags[0], "1.2.3");
  vab_template_free(t);

  t = load_text(ctx, HEAD "sysprep: false\n", NULL);
  assert_false(t->sysprep.enabled);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_suggestions(void **state) {
  (void)state;
  static const char *const words[] = {"source", "sysprep", "outputs", NULL};
  assert_string_equal(vab_suggest("sorce", words), "source");
  assert_string_equal(vab_suggest("ssyprep", words), "sysprep");
  assert_string_equal(vab_suggest("output", words), "outputs");
  assert_null(vab_suggest("x", words));
  assert_null(vab_suggest("publish", words));
}

static void test_provisioner_inputs(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: file, source: files/site, destination: /srv/site}\n"
      "  - {type: shell, script: scripts/setup.sh}\n"
      "  - {type: firstboot, script: ./scripts/setup.sh}\n"
      "  - {type: packages, install: [nginx]}\n", NULL);
  if (t == NULL)
    dump_diags(ctx);
  assert_non_null(t);
  const char *paths[8];
  const struct vab_step *s = &t->steps[0];
  assert_int_equal(s->step_type->inputs(s->config, paths, 8), 3);
  assert_string_equal(paths[0], DATA_DIR "/files/site/a.html");
  assert_string_equal(paths[1], DATA_DIR "/files/site/c.txt");
  assert_string_equal(paths[2], DATA_DIR "/files/site/sub/b.css");
  /* A short array gets what fits, and the full count. */
  assert_int_equal(s->step_type->inputs(s->config, paths, 1), 3);
  s = &t->steps[1];
  assert_int_equal(s->step_type->inputs(s->config, paths, 8), 1);
  assert_string_equal(paths[0], DATA_DIR "/scripts/setup.sh");
  assert_true(s->step_type->flags & VAB_STEP_NEEDS_NETWORK);
  s = &t->steps[2];
  assert_int_equal(s->step_type->inputs(s->config, paths, 8), 1);
  assert_string_equal(paths[0], DATA_DIR "/scripts/setup.sh");
  s = &t->steps[3];
  assert_null(s->step_type->inputs);   /* reads no host files */
  assert_string_equal(s->type, "packages");
  assert_int_equal(s->mark.line, 8);
  assert_int_equal(s->mark.column, 5);
  char *yaml = vab_node_to_yaml(ctx, s->spec);
  assert_string_equal(yaml, "type: packages\ninstall:\n- nginx\n");
  free(yaml);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

/* Print, load the print, print again: the same bytes. */
static void round_trip(const char *text, const char *expected) {
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load_text(ctx, text, NULL);
  if (t == NULL)
    dump_diags(ctx);
  assert_non_null(t);
  char *first = vab_template_to_yaml(ctx, t);
  assert_non_null(first);
  if (expected != NULL)
    assert_string_equal(first, expected);
  struct vab_template *again = load_text(ctx, first, NULL);
  if (again == NULL)
    dump_diags(ctx);
  assert_non_null(again);
  char *second = vab_template_to_yaml(ctx, again);
  assert_string_equal(first, second);
  free(first);
  free(second);
  vab_template_free(t);
  vab_template_free(again);
  vab_ctx_free(ctx);
}

static void test_canonical_round_trip(void **state) {
  (void)state;
  round_trip(
      "outputs: [{dedup: yes, format: qcow2}]\n"
      "name: web\nvab: 1\nsource: {bootstrap: {suite: bookworm}}\n"
      "version: \"1.0\"\nvariables: {who: \"${x}\", n: \"7\"}\n"
      "description: \"true\"\n"
      "provisioners: [{destination: /etc/motd, type: file, "
      "content: \"n=${n} $${raw}\"}]\n"
      "sysprep: {keep: [trim, logs]}\n",
      "vab: 1\n"
      "name: web\n"
      "version: \"1.0\"\n"
      "description: \"true\"\n"
      "variables:\n"
      "  who: ${x}\n"
      "  n: \"7\"\n"
      "source:\n"
      "  bootstrap:\n"
      "    distro: debian\n"
      "    suite: bookworm\n"
      "    mirror: http://deb.debian.org/debian\n"
      "    variant: minbase\n"
      "disk:\n"
      "  size: 4G\n"
      "  partitions: gpt\n"
      "  filesystem: ext4\n"
      "  firmware: bios\n"
      "hardware:\n"
      "  cpus: 2\n"
      "  memory: 2G\n"
      "  nics: 1\n"
      "  disk_bus: scsi\n"
      "  nic_model: auto\n"
      "provisioners:\n"
      "- type: file\n"
      "  content: n=7 $${raw}\n"
      "  destination: /etc/motd\n"
      "sysprep:\n"
      "  operations:\n"
      "  - machine-id\n"
      "  - ssh-hostkeys\n"
      "  - apt-cache\n"
      "  - tmp\n"
      "  - bash-history\n"
      "  - dhcp-leases\n"
      "  - random-seed\n"
      "tests: []\n"
      "outputs:\n"
      "- format: qcow2\n"
      "  dedup: yes\n");
  round_trip(HEAD "sysprep: false\noutputs: [{format: ova}]\n"
             "tests: [{boot: {serial: \"login: \"}}]\n"
             "publish: [{ref: r.example/x}]\n", NULL);
  round_trip("vab: 1\nname: web\nsource: {rootfs: {path: files/rootfs.tar}}\n"
             "sign: {key: k.pem}\n", NULL);
}

static void test_password_is_never_printed(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load_text(ctx, HEAD
      "provisioners: [{type: users, lock_root: false, users: [{name: root, "
      "password: hunter2}]}]\n", NULL);
  assert_non_null(t);
  char *yaml = vab_template_to_yaml(ctx, t);
  assert_null(strstr(yaml, "hunter2"));
  assert_non_null(strstr(yaml, "    password: '********'\n"));
  free(yaml);
  /* The step key's text keeps it: a new password is a new step. */
  yaml = vab_node_to_yaml(ctx, t->steps[0].spec);
  assert_string_equal(yaml, "type: users\nusers:\n- name: root\n"
                            "  password: hunter2\nlock_root: false\n");
  free(yaml);
  vab_template_free(t);
  /* Nor is it echoed by an error about it, or the line shown with it. */
  assert_null(load_text(ctx, HEAD
      "provisioners: [{type: users, users: [{name: root, "
      "password: hunter2}]}]\n", NULL));
  for (size_t i = 0; i < vab_diag_count(ctx); i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    assert_null(strstr(d->message, "hunter2"));
    assert_true(d->hint == NULL || strstr(d->hint, "hunter2") == NULL);
    assert_null(strstr(d->source_line, "hunter2"));
  }
  vab_ctx_free(ctx);
}

/* `booted` and `timeout` (issue 13): the loader owns them for the types
 * that may boot; the canonical spec, and so the step key, holds them only
 * for a booted step. */
static void test_booted_steps(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: shell, inline: [a], booted: true}\n"
      "  - {type: shell, inline: [a], booted: true, timeout: 90s}\n"
      "  - {type: file, content: x, destination: /x, booted: yes,"
      " timeout: 1500ms}\n"
      "  - {type: shell, inline: [a], booted: false}\n"
      "  - {type: shell, inline: [a]}\n", NULL);
  if (t == NULL)
    dump_diags(ctx);
  assert_non_null(t);
  assert_int_equal(t->n_steps, 5);
  assert_true(t->steps[0].booted);
  assert_int_equal(t->steps[0].timeout_ms, 30ull * 60 * 1000);
  assert_true(t->steps[1].booted);
  assert_int_equal(t->steps[1].timeout_ms, 90000);
  assert_true(t->steps[2].booted);
  assert_int_equal(t->steps[2].timeout_ms, 1500);
  assert_false(t->steps[3].booted);
  assert_int_equal(t->steps[3].timeout_ms, 0);
  assert_false(t->steps[4].booted);
  char *yaml = vab_node_to_yaml(ctx, t->steps[0].spec);
  assert_string_equal(yaml, "type: shell\ninline:\n- a\nbooted: true\n"
                            "timeout: 1800s\n");
  free(yaml);
  yaml = vab_node_to_yaml(ctx, t->steps[2].spec);
  assert_non_null(strstr(yaml, "booted: true\ntimeout: 1500ms\n"));
  free(yaml);
  /* booted: false keys as the step without it. */
  char *off = vab_node_to_yaml(ctx, t->steps[3].spec);
  char *plain = vab_node_to_yaml(ctx, t->steps[4].spec);
  assert_string_equal(off, plain);
  assert_string_equal(plain, "type: shell\ninline:\n- a\n");
  free(off);
  free(plain);
  vab_template_free(t);

  /* timeout on an offline step, at the value's file:line:column. */
  assert_null(load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: shell, inline: [a], timeout: 5m}\n", NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 5, 41,
              "timeout applies to a booted step only; this 'shell' step "
              "runs in the builder VM",
              "add 'booted: true' to run it in the booted appliance, or "
              "remove 'timeout'");
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: shell, inline: [a], booted: false, timeout: 5m}\n", NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  vab_diag_clear(ctx);
  /* A bad bool, a bad or out-of-range duration. */
  assert_null(load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: shell, inline: [a], booted: maybe}\n", NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  assert_int_equal(vab_diag_get(ctx, 0)->line, 5);
  assert_int_equal(vab_diag_get(ctx, 0)->column, 40);
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: shell, inline: [a], booted: true, timeout: soon}\n", NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: shell, inline: [a], booted: true, timeout: 25h}\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 5, 55,
              "timeout must be from 1s to 24h, not '25h'", NULL);
  vab_diag_clear(ctx);
  /* Types that cannot boot do not take the keys. */
  assert_null(load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: hostname, hostname: web, booted: true}\n", NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, HEAD
      "provisioners:\n"
      "  - {type: hostname, hostname: web, timeout: 5m}\n", NULL));
  assert_int_equal(vab_error_count(ctx), 1);
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_each_diagnostic),
    cmocka_unit_test(test_all_problems_in_one_run),
    cmocka_unit_test(test_output_after_a_duplicate),
    cmocka_unit_test(test_defaults_are_filled),
    cmocka_unit_test(test_typed_values),
    cmocka_unit_test(test_suggestions),
    cmocka_unit_test(test_provisioner_inputs),
    cmocka_unit_test(test_canonical_round_trip),
    cmocka_unit_test(test_password_is_never_printed),
    cmocka_unit_test(test_booted_steps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
