/* Command lines vab builds for helper programs: no template value can
 * become an option or a protocol, whatever the schema let through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vab/vab.h"
#include "builder/source.h"
#include "common/buf.h"
#include "common/debian.h"
#include "common/qemu-name.h"

static struct vab_source bootstrap(const char *suite, const char *mirror,
                                   const char *variant, const char **packages,
                                   size_t n) {
  struct vab_source src;
  memset(&src, 0, sizeof src);
  src.kind = VAB_SOURCE_BOOTSTRAP;
  src.mark.file = "t.yaml";
  src.mark.line = 4;
  src.mark.column = 3;
  src.suite = suite;
  src.mirror = mirror;
  src.variant = variant;
  src.packages = packages;
  src.n_packages = n;
  return src;
}

static size_t index_of(char **argv, const char *s) {
  for (size_t i = 0; argv[i] != NULL; i++)
    if (strcmp(argv[i], s) == 0)
      return i;
  return (size_t)-1;
}

static void test_mmdebstrap_positionals_after_dashdash(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  const char *packages[] = {"nginx", "libc6:amd64=2.36-9+deb12u4", NULL};
  struct vab_source src = bootstrap("bookworm", "https://deb.debian.org/debian",
                                    "minbase", packages, 2);
  char **argv = NULL;
  /* A target that looks like an option is still the target. */
  assert_int_equal(vab_bootstrap_argv(ctx, &src, "-o.tar", &argv), 0);
  size_t dashdash = index_of(argv, "--");
  assert_true(dashdash != (size_t)-1);
  assert_string_equal(argv[dashdash + 1], "bookworm");
  assert_string_equal(argv[dashdash + 2], "-o.tar");
  assert_string_equal(argv[dashdash + 3], "https://deb.debian.org/debian");
  assert_null(argv[dashdash + 4]);
  /* Every option comes before "--". */
  for (size_t i = 1; i < dashdash; i++)
    assert_int_equal(strncmp(argv[i], "--", 2), 0);
  assert_string_equal(argv[0], "mmdebstrap");
  assert_int_equal(index_of(argv, "--variant=minbase") < dashdash, 1);
  char *include = argv[2];
  assert_int_equal(strncmp(include, "--include=", 10), 0);
  assert_non_null(strstr(include, ",nginx,libc6:amd64=2.36-9+deb12u4"));
  vab_bootstrap_argv_free(argv);
  assert_int_equal(vab_error_count(ctx), 0);
  vab_ctx_free(ctx);
}

/* Each hostile value is refused at the source's location, and no argv is
 * built: the schema is not the only line of defence. */
static void test_mmdebstrap_hostile_values(void **state) {
  (void)state;
  static const char *const hostile_packages[] = {
    "-o APT::Get::AllowUnauthenticated=true", "--setup-hook=id", "./evil.deb",
    "/tmp/evil.deb", "nginx,curl", "nginx curl", "?essential", "nginx/sid",
    "Nginx", "n", "nginx=", "nginx=-1", "nginx:", "nginx\n", NULL,
  };
  struct {
    const char *suite, *mirror, *variant;
  } cases[] = {
    {"--setup-hook=touch /tmp/pwned", NULL, NULL},
    {"-v", NULL, NULL},
    {"bookworm main", NULL, NULL},
    {"bookworm\ndeb http://evil/ sid main", NULL, NULL},
    {"", NULL, NULL},
    {NULL, "--setup-hook=id", NULL},
    {NULL, "-", NULL},
    {NULL, "/etc/apt/sources.list", NULL},
    {NULL, "http://deb.debian.org/debian bookworm main\ndeb http://evil/",
     NULL},
    {NULL, "http://deb.debian.org/debian\tx", NULL},
    {NULL, "http:///debian", NULL},
    {NULL, "ftp://deb.debian.org/debian", NULL},
    {NULL, "http://deb.debian.org/debian#", NULL},
    {NULL, NULL, "--setup-hook=id"},
    {NULL, NULL, "fakechroot"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct vab_ctx *ctx = vab_ctx_new();
    struct vab_source src =
        bootstrap(cases[i].suite, cases[i].mirror, cases[i].variant, NULL, 0);
    char **argv = (char **)&src;
    if (vab_bootstrap_argv(ctx, &src, "out.tar", &argv) != -1)
      fail_msg("case %zu was accepted", i);
    assert_null(argv);
    const struct vab_diag *d = vab_last_error(ctx);
    assert_non_null(d);
    assert_int_equal(d->line, 4);
    assert_int_equal(d->column, 3);
    vab_ctx_free(ctx);
  }
  for (size_t i = 0; hostile_packages[i] != NULL; i++) {
    struct vab_ctx *ctx = vab_ctx_new();
    const char *packages[] = {hostile_packages[i], NULL};
    struct vab_source src = bootstrap(NULL, NULL, NULL, packages, 1);
    char **argv = NULL;
    if (vab_bootstrap_argv(ctx, &src, "out.tar", &argv) != -1)
      fail_msg("package '%s' was accepted", hostile_packages[i]);
    assert_null(argv);
    vab_ctx_free(ctx);
  }
}

static void test_debian_grammars(void **state) {
  (void)state;
  static const char *const good_packages[] = {
    "nginx", "g++", "libstdc++6", "linux-image-amd64", "0ad", "xz-utils",
    "nginx:amd64", "nginx=1.22.1-9", "libc6:i386=2.36-9+deb12u4",
    "openssl=3.0.11-1~deb12u2", "tzdata=2024a-0+deb12u1",
    "python3.11", "epoch=1:2.0", NULL,
  };
  for (size_t i = 0; good_packages[i] != NULL; i++)
    if (!deb_valid_package(good_packages[i]))
      fail_msg("'%s' was refused", good_packages[i]);
  static const char *const good_suites[] = {
    "bookworm", "bookworm-backports", "stable", "jammy", "trixie_x",
    "12.5", NULL,
  };
  for (size_t i = 0; good_suites[i] != NULL; i++)
    assert_true(deb_valid_suite(good_suites[i]));
  assert_false(deb_valid_suite("-bookworm"));
  assert_false(deb_valid_suite("book/worm"));
  assert_false(deb_valid_suite(".."));
  static const char *const good_mirrors[] = {
    "http://deb.debian.org/debian", "https://mirror.example:8443/debian/",
    "file:///srv/mirror/debian", "http://[::1]:3142/debian", NULL,
  };
  for (size_t i = 0; good_mirrors[i] != NULL; i++)
    if (!deb_valid_mirror(good_mirrors[i]))
      fail_msg("mirror '%s' was refused", good_mirrors[i]);
  for (size_t i = 0; deb_variants[i] != NULL; i++)
    assert_true(deb_valid_variant(deb_variants[i]));
  assert_false(deb_valid_variant("minbase "));
}

static void test_qemu_file_names(void **state) {
  (void)state;
  struct {
    const char *path, *positional, *option;
  } cases[] = {
    {"/var/tmp/disk.qcow2", "/var/tmp/disk.qcow2", "/var/tmp/disk.qcow2"},
    {"nbd:evil:10809", "./nbd:evil:10809", "./nbd:evil:10809"},
    {"json:{\"file.filename\":\"/etc/shadow\"}",
     "./json:{\"file.filename\":\"/etc/shadow\"}",
     "./json:{\"file.filename\":\"/etc/shadow\"}"},
    {"-o.qcow2", "./-o.qcow2", "./-o.qcow2"},
    {"/tmp/a,file=/etc/shadow", "/tmp/a,file=/etc/shadow",
     "/tmp/a,,file=/etc/shadow"},
    {"out,b/x.qcow2", "./out,b/x.qcow2", "./out,,b/x.qcow2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct buf a = BUF_INIT, b = BUF_INIT;
    assert_int_equal(qemu_file_name(&a, cases[i].path), 0);
    assert_int_equal(qemu_option_file_name(&b, cases[i].path), 0);
    assert_string_equal(a.data, cases[i].positional);
    assert_string_equal(b.data, cases[i].option);
    buf_release(&a);
    buf_release(&b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_mmdebstrap_positionals_after_dashdash),
    cmocka_unit_test(test_mmdebstrap_hostile_values),
    cmocka_unit_test(test_debian_grammars),
    cmocka_unit_test(test_qemu_file_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
