/* Template values that would reach a command line as an option, a second
 * apt sources line or a host .deb file: validate refuses each one at its
 * file:line:column.  (A suite "--setup-hook=..." once ran a host command
 * as root through mmdebstrap.) */
#include "helpers.h"

#define BOOTSTRAP(inner) "vab: 1\nname: web\nsource:\n  bootstrap:\n" inner
#define STEP(step)                                                    \
  "vab: 1\nname: web\nsource: {bootstrap: {suite: bookworm}}\n"       \
  "provisioners:\n  - " step "\n"

static const char package_hint[] =
    "use a Debian package name (lowercase letters, digits, '+', '-' and "
    "'.'), optionally with :ARCH and =VERSION";

struct hostile_case {
  const char *yaml;
  unsigned line, column;
  const char *message;
  const char *hint;   /* NULL: not checked */
};

static const struct hostile_case cases[] = {
  /* suite */
  {BOOTSTRAP("    suite: \"--setup-hook=touch /tmp/pwned\"\n"), 5, 12,
   "'--setup-hook=touch /tmp/pwned' is not a suite name such as bookworm",
   "use 1 to 64 of letters, digits, '-', '.' and '_', starting with a "
   "letter or digit"},
  {BOOTSTRAP("    suite: \"-v\"\n"), 5, 12,
   "'-v' is not a suite name such as bookworm", NULL},
  {BOOTSTRAP("    suite: bookworm main\n"), 5, 12,
   "'bookworm main' is not a suite name such as bookworm", NULL},
  {BOOTSTRAP("    suite: \"bookworm\\ndeb http://evil/ sid main\"\n"), 5, 12,
   "'bookworm\ndeb http://evil/ sid main' is not a suite name such as "
   "bookworm", NULL},
  /* mirror */
  {BOOTSTRAP("    mirror: \"--setup-hook=id\"\n"), 5, 13,
   "mirror must be an http://, https:// or file:/// URL, not "
   "'--setup-hook=id'", "one URL, with no spaces, quotes or '#'"},
  {BOOTSTRAP("    mirror: \"http://deb.debian.org/debian bookworm main\"\n"), 5,
   13, "mirror must be an http://, https:// or file:/// URL, not "
   "'http://deb.debian.org/debian bookworm main'", NULL},
  {BOOTSTRAP("    mirror: \"http://deb.debian.org/debian\\n"
             "deb [trusted=yes] http://evil/ sid main\"\n"), 5, 13,
   "mirror must be an http://, https:// or file:/// URL, not "
   "'http://deb.debian.org/debian\ndeb [trusted=yes] http://evil/ sid main'",
   NULL},
  {BOOTSTRAP("    mirror: \"http://deb.debian.org/debian#\"\n"), 5, 13,
   "mirror must be an http://, https:// or file:/// URL, not "
   "'http://deb.debian.org/debian#'", NULL},
  {BOOTSTRAP("    mirror: \"-\"\n"), 5, 13,
   "mirror must be an http://, https:// or file:/// URL, not '-'", NULL},
  /* variant: only mmdebstrap's own names */
  {BOOTSTRAP("    variant: \"--setup-hook=id\"\n"), 5, 14,
   "unknown source.bootstrap.variant '--setup-hook=id'", NULL},
  {BOOTSTRAP("    variant: minbase,apt\n"), 5, 14,
   "unknown source.bootstrap.variant 'minbase,apt'", NULL},
  /* bootstrap packages: one item each, never an option, a path or a list */
  {BOOTSTRAP("    packages: [\"-o APT::Get::AllowUnauthenticated=true\"]\n"), 5,
   16, "'-o APT::Get::AllowUnauthenticated=true' is not a valid package name",
   package_hint},
  {BOOTSTRAP("    packages: [nginx, \"--setup-hook=id\"]\n"), 5, 23,
   "'--setup-hook=id' is not a valid package name", package_hint},
  {BOOTSTRAP("    packages: [./evil.deb]\n"), 5, 16,
   "'./evil.deb' is not a valid package name", package_hint},
  {BOOTSTRAP("    packages: [\"nginx,curl\"]\n"), 5, 16,
   "'nginx,curl' is not a valid package name", package_hint},
  {BOOTSTRAP("    packages: [nginx/sid]\n"), 5, 16,
   "'nginx/sid' is not a valid package name", package_hint},
  {BOOTSTRAP("    packages: [\"?essential\"]\n"), 5, 16,
   "'?essential' is not a valid package name", package_hint},
  {BOOTSTRAP("    packages: [\"nginx=--force\"]\n"), 5, 16,
   "'nginx=--force' is not a valid package name", package_hint},
  /* the packages step, whose names reach apt-get in the guest */
  {STEP("{type: packages, install: "
        "[\"-o APT::Get::AllowUnauthenticated=true\"]}"),
   5, 32,
   "'-o APT::Get::AllowUnauthenticated=true' in install is not a package "
   "name", package_hint},
  {STEP("{type: packages, remove: [curl, \"--allow-remove-essential\"]}"), 5,
   37, "'--allow-remove-essential' in remove is not a package name",
   package_hint},
  /* names of other steps that reach useradd and systemctl */
  {STEP("{type: users, users: [{name: \"-o\"}]}"), 5, 34,
   "'-o' is not a valid user name", NULL},
  {STEP("{type: services, enable: [\"--root=/\"]}"), 5, 31,
   "'--root=/' is not a systemd unit name", NULL},
  {STEP("{type: file, content: x, destination: /x, owner: \"-R\"}"), 5, 54,
   "owner must be USER or USER:GROUP (names or numbers), not '-R'", NULL},
};

static void test_each_hostile_value(void **state) {
  (void)state;
  size_t failures = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct hostile_case *c = &cases[i];
    struct vab_ctx *ctx = vab_ctx_new();
    struct vab_template *t = load_text(ctx, c->yaml, NULL);
    const struct vab_diag *d = vab_diag_get(ctx, 0);
    bool ok = t == NULL && d != NULL && d->severity == VAB_SEV_ERROR &&
              d->file != NULL && strcmp(d->file, "t.yaml") == 0 &&
              d->line == c->line && d->column == c->column &&
              strcmp(d->message, c->message) == 0;
    if (ok && c->hint != NULL)
      ok = d->hint != NULL && strcmp(d->hint, c->hint) == 0;
    if (!ok) {
      fprintf(stderr, "case %zu (want %u:%u %s):\n", i, c->line, c->column,
                      c->message);
      dump_diags(ctx);
      failures++;
    }
    vab_template_free(t);
    vab_ctx_free(ctx);
  }
  assert_int_equal(failures, 0);
}

/* What the grammars still accept: real suites, mirrors and apt's
 * NAME:ARCH=VERSION. */
static void test_real_values_accepted(void **state) {
  (void)state;
  static const char *const valid[] = {
    BOOTSTRAP("    suite: bookworm-backports\n"
              "    mirror: https://mirror.example:8443/debian/\n"
              "    variant: important\n"
              "    packages: [nginx, \"libc6:amd64\", "
              "\"openssl=3.0.11-1~deb12u2\", g++, python3.11]\n"),
    BOOTSTRAP("    mirror: file:///srv/mirror/debian\n    variant: standard\n"),
    STEP("{type: packages, "
         "install: [\"nginx=1.22.1-9\", \"libstdc++6:i386\"]}"),
  };
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    struct vab_ctx *ctx = vab_ctx_new();
    struct vab_template *t = load_text(ctx, valid[i], NULL);
    if (t == NULL) {
      fprintf(stderr, "valid case %zu:\n", i);
      dump_diags(ctx);
    }
    assert_non_null(t);
    vab_template_free(t);
    vab_ctx_free(ctx);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_each_hostile_value),
    cmocka_unit_test(test_real_values_accepted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
