/* The expander: `extends` merging, variables, escapes and the environment. */
#include "helpers.h"

#define SOURCE "source: {bootstrap: {suite: bookworm}}\n"

static const char *var(const struct vab_template *t, const char *name) {
  for (size_t i = 0; i < t->n_variables; i++)
    if (strcmp(t->variables[i].name, name) == 0)
      return t->variables[i].value;
  return NULL;
}

static void test_variable_precedence(void **state) {
  (void)state;
  const char *text = "vab: 1\nname: web\nversion: \"1.${build}\"\n"
                     "variables: {build: \"7\"}\n" SOURCE;
  struct vab_ctx *ctx = vab_ctx_new();
  unsetenv("VAB_VAR_build");
  /* The template's default. */
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = true};
  struct vab_template *t = load_text(ctx, text, &opts);
  assert_non_null(t);
  assert_string_equal(t->version, "1.7");
  vab_template_free(t);
  /* --var beats the default. */
  struct vab_var cli = {"build", "8"};
  opts.vars = &cli;
  opts.n_vars = 1;
  t = load_text(ctx, text, &opts);
  assert_string_equal(t->version, "1.8");
  assert_string_equal(var(t, "build"), "8");
  vab_template_free(t);
  /* VAB_VAR_build beats --var. */
  setenv("VAB_VAR_build", "9", 1);
  t = load_text(ctx, text, &opts);
  assert_string_equal(t->version, "1.9");
  assert_string_equal(var(t, "build"), "9");
  vab_template_free(t);
  /* ...unless the environment is off. */
  opts.use_environment = false;
  t = load_text(ctx, text, &opts);
  assert_string_equal(t->version, "1.8");
  vab_template_free(t);
  unsetenv("VAB_VAR_build");
  assert_int_equal(vab_error_count(ctx), 0);
  vab_ctx_free(ctx);
}

static void test_escapes_and_builtins(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  /* The environment cannot change what ${name} and ${version} mean. */
  setenv("VAB_VAR_name", "evil", 1);
  setenv("VAB_VAR_version", "6.6.6", 1);
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = true};
  struct vab_template *t = load_text(ctx,
      "vab: 1\nname: web\nversion: \"2.${n}\"\nvariables: {n: \"3\"}\n" SOURCE
      "description: \"cost $$5, literal $${n}, name ${name} v${version}\"\n"
      "publish: [{ref: reg.example/a/web, tags: [\"${version}\", latest]}]\n",
      &opts);
  unsetenv("VAB_VAR_name");
  unsetenv("VAB_VAR_version");
  assert_non_null(t);
  assert_string_equal(t->description,
                      "cost $$5, literal ${n}, name web v2.3");
  assert_int_equal(t->n_publish, 1);
  assert_int_equal(t->publish[0].n_tags, 2);
  assert_string_equal(t->publish[0].tags[0], "2.3");
  assert_string_equal(t->publish[0].tags[1], "latest");
  /* The canonical form escapes it again, so it survives a reload. */
  char *yaml = vab_template_to_yaml(ctx, t);
  assert_non_null(strstr(yaml, "literal $${n}"));
  free(yaml);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_environment_reference(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  const char *text = "vab: 1\nname: web\n" SOURCE
                     "description: \"by ${env:VAB_TEST_WHO}\"\n";
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = true};
  setenv("VAB_TEST_WHO", "ci", 1);
  struct vab_template *t = load_text(ctx, text, &opts);
  assert_non_null(t);
  assert_string_equal(t->description, "by ci");
  vab_template_free(t);
  unsetenv("VAB_TEST_WHO");
  assert_null(load_text(ctx, text, &opts));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 4, 18,
              "environment variable 'VAB_TEST_WHO' is not set", "");
  vab_diag_clear(ctx);
  opts.use_environment = false;
  assert_null(load_text(ctx, text, &opts));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 4, 18,
              "${env:VAB_TEST_WHO} cannot be used: reading the environment "
              "is turned off",
              "");
  vab_ctx_free(ctx);
}

static void test_unknown_variable_is_located(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx,
      "vab: 1\nname: web\nvariables: {build: \"1\"}\n" SOURCE
      "version: 1.${biuld}\n"
      "description: \"${nobody_knows_this}\"\n"
      "outputs: [{format: qcow2, compression: \"${zip\"}]\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 5, 12,
              "unknown variable 'biuld'", "did you mean 'build'?");
  expect_diag(ctx, 1, VAB_SEV_ERROR, "t.yaml", 6, 15,
              "unknown variable 'nobody_knows_this'",
              "define it under 'variables:', or pass --var "
              "nobody_knows_this=VALUE");
  expect_diag(ctx, 2, VAB_SEV_ERROR, "t.yaml", 7, 41,
              "'${' without a closing '}'", "write $${ for a literal ${");
  /* Nothing else: the version and compression that did not expand are
   * not reported again by the schema. */
  assert_int_equal(vab_error_count(ctx), 3);
  assert_int_equal(vab_diag_count(ctx), 3);
  vab_ctx_free(ctx);
}

static void test_bad_variable_names(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  assert_null(load_text(ctx,
      "vab: 1\nname: web\n" SOURCE
      "variables: {9lives: x, name: y, ok: [1]}\n", NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 4, 13,
              "invalid variable name '9lives'",
              "use letters, digits and '_', starting with a letter or '_'");
  expect_diag(ctx, 1, VAB_SEV_ERROR, "t.yaml", 4, 24,
              "'name' cannot be a variable: ${name} is the template's own "
              "name",
              "");
  expect_diag(ctx, 2, VAB_SEV_ERROR, "t.yaml", 4, 37,
              "variable 'ok' must be a single value, not a list", "");
  vab_diag_clear(ctx);
  struct vab_var cli = {"bad-name", "1"};
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .vars = &cli, .n_vars = 1};
  assert_null(load_text(ctx, "vab: 1\nname: web\n" SOURCE, &opts));
  expect_diag(ctx, 0, VAB_SEV_ERROR, NULL, 0, 0,
              "--var: invalid variable name 'bad-name'", "");
  vab_ctx_free(ctx);
}

static void test_extends_merges(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = NULL;
  if (vab_template_load(ctx, DATA_DIR "/extends/child.yaml", default_opts(), &t) != 0)
    dump_diags(ctx);
  assert_non_null(t);
  /* Scalars override; the parent's version uses the child's variable. */
  assert_string_equal(t->name, "child");
  assert_string_equal(t->version, "2.0");
  assert_string_equal(var(t, "greeting"), "hello");
  /* Mappings merge key by key. */
  assert_int_equal(t->disk.size, 6ull << 30);
  assert_int_equal(t->disk.filesystem, VAB_FS_XFS);
  assert_int_equal(t->hardware.cpus, 4);
  /* Lists override... */
  assert_int_equal(t->source.n_packages, 1);
  assert_string_equal(t->source.packages[0], "nginx");
  assert_null(t->source.packages[1]);
  /* ...except provisioners, tests and outputs, which append. */
  assert_int_equal(t->n_steps, 2);
  assert_string_equal(t->steps[0].type, "file");
  assert_string_equal(t->steps[1].type, "hostname");
  assert_string_equal(t->steps[0].mark.file,
                      DATA_DIR "/extends/base/base.yaml");
  assert_int_equal(t->steps[0].mark.line, 11);
  assert_string_equal(t->steps[1].mark.file, DATA_DIR "/extends/child.yaml");
  assert_int_equal(t->n_tests, 2);
  assert_true(t->tests[0].has_tcp);
  assert_true(t->tests[1].has_http);
  assert_int_equal(t->n_outputs, 2);
  assert_string_equal(t->outputs[0].format, "qcow2");
  assert_string_equal(t->outputs[1].format, "vmdk");
  /* The parent's relative path starts from the parent's folder, and the
   * canonical form says so relative to the child. */
  const struct vab_node *source = vab_node_get(t->steps[0].spec, "source");
  assert_string_equal(source->scalar, "base/files/motd");
  const char *inputs[4];
  assert_int_equal(t->steps[0].step_type->inputs(t->steps[0].config,
                                                   inputs, 4),
                   1);
  assert_string_equal(inputs[0], DATA_DIR "/extends/base/files/motd");
  assert_string_equal(vab_node_get(t->steps[1].spec, "hostname")->scalar,
                      "child-hello");
  assert_null(vab_node_get(t->root, "extends"));
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_extends_errors_point_into_the_right_file(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = NULL;
  assert_int_equal(vab_template_load(ctx,
                                     DATA_DIR "/extends/uses-bad-parent.yaml", default_opts(), &t),
                   -1);
  expect_diag(ctx, 0, VAB_SEV_ERROR, DATA_DIR "/extends/bad-parent.yaml", 4,
              14,
              "'disk.size' must be a size such as 512M, 4G, 4GiB or a number "
              "of bytes, not 'huge'",
              "");
  assert_string_equal(vab_diag_get(ctx, 0)->source_line, "disk: {size: huge}");
  vab_diag_clear(ctx);
  assert_int_equal(vab_template_load(ctx, DATA_DIR "/extends/cycle-a.yaml", default_opts(), &t),
                   -1);
  expect_diag(ctx, 0, VAB_SEV_ERROR, DATA_DIR "/extends/cycle-b.yaml", 3, 10,
              "'extends' makes a cycle: " DATA_DIR "/extends/cycle-a.yaml -> "
              DATA_DIR "/extends/cycle-b.yaml -> " DATA_DIR
              "/extends/cycle-a.yaml",
              "");
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, "vab: 1\nextends: missing.yaml\nname: x\n",
                        NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 2, 10,
              "cannot find the template '" DATA_DIR "/missing.yaml' that "
              "this one extends: No such file or directory",
              "");
  vab_diag_clear(ctx);
  assert_null(load_text(ctx, "vab: 1\nextends: \"${x}.yaml\"\nname: x\n",
                        NULL));
  expect_diag(ctx, 0, VAB_SEV_ERROR, "t.yaml", 2, 10,
              "'extends' cannot use variables: it is read before they are "
              "known",
              "");
  vab_ctx_free(ctx);
}

/* Every diagnostic of ctx, as one string, with hints. */
static char *all_diags(struct vab_ctx *ctx) {
  size_t cap = 1;
  for (size_t i = 0; i < vab_diag_count(ctx); i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    cap += strlen(d->message) + (d->hint ? strlen(d->hint) : 0) + 2;
  }
  char *out = calloc(1, cap);
  assert_non_null(out);
  for (size_t i = 0; i < vab_diag_count(ctx); i++) {
    const struct vab_diag *d = vab_diag_get(ctx, i);
    strcat(out, d->message);
    strcat(out, "\n");
    if (d->hint != NULL)
      strcat(out, d->hint);
  }
  return out;
}

#define CANARY "s3cr3t!canary-0123456789-abcdefghij"

static void test_environment_values_are_not_shown(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = true};
  setenv("VAB_TEST_TOKEN", CANARY, 1);
  setenv("VAB_TEST_SHORT", "ab!", 1);
  setenv("VAB_VAR_where", "x." CANARY, 1);
  /* Invalid values, wholly or partly from the environment: a size and a
   * number (the node readers), a host name and a user name (the schema's
   * and the provisioners' own checks). */
  assert_null(load_text(ctx,
      "vab: 1\nname: web\n" SOURCE
      "variables: {where: here}\n"
      "disk: {size: \"${env:VAB_TEST_TOKEN}\"}\n"
      "hardware: {cpus: \"${env:VAB_TEST_SHORT}\"}\n"
      "provisioners:\n"
      "  - {type: hostname, hostname: \"h-${env:VAB_TEST_TOKEN}\"}\n"
      "  - {type: users, users: [{name: \"${where}\"}]}\n"
      "outputs: [{format: \"${env:VAB_TEST_SHORT}\"}]\n",
      &opts));
  char *text = all_diags(ctx);
  if (strstr(text, "s3cr3t") != NULL || strstr(text, "ab!") != NULL ||
      strstr(text, "0123456789") != NULL)
    dump_diags(ctx);
  assert_null(strstr(text, "s3cr3t"));
  assert_null(strstr(text, "0123456789"));
  assert_null(strstr(text, "ab!"));
  /* What is shown instead: the text as written. */
  assert_non_null(strstr(text, "not '${env:VAB_TEST_TOKEN}'"));
  assert_non_null(strstr(text, "not '${env:VAB_TEST_SHORT}'"));
  assert_non_null(strstr(text, "h-${env:VAB_TEST_TOKEN}"));
  assert_non_null(strstr(text, "'${where}' is not a valid user name"));
  assert_true(vab_error_count(ctx) >= 4);
  free(text);
  vab_ctx_free(ctx);
  unsetenv("VAB_TEST_SHORT");
  unsetenv("VAB_VAR_where");
  unsetenv("VAB_TEST_TOKEN");
}

static void log_capture(void *opaque, enum vab_log_level level,
                        const char *line) {
  (void)level;
  char *seen = opaque;
  snprintf(seen, 512, "%s", line);
}

static int progress_capture(void *opaque, enum vab_phase phase,
                            const char *step, uint64_t done, uint64_t total) {
  (void)phase;
  (void)done;
  (void)total;
  snprintf(opaque, 512, "%s", step);
  return 0;
}

static void test_environment_values_reach_the_build_only(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  char seen[512] = "";
  vab_ctx_set_log(ctx, log_capture, seen);
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = true};
  setenv("VAB_TEST_TOKEN", CANARY, 1);
  struct vab_template *t = load_text(ctx,
      "vab: 1\nname: web\n" SOURCE
      "description: \"by ${env:VAB_TEST_TOKEN}\"\n"
      "provisioners:\n"
      "  - {type: shell, inline: [\"echo ${env:VAB_TEST_TOKEN} >/etc/t\"]}\n",
      &opts);
  unsetenv("VAB_TEST_TOKEN");
  assert_non_null(t);
  /* The build gets the value... */
  assert_string_equal(t->description, "by " CANARY);
  char *full = vab_node_to_yaml(ctx, t->root);
  assert_non_null(strstr(full, "echo " CANARY " >/etc/t"));
  free(full);
  /* ...--print and the template digest the text as written, which reads
   * the environment again when loaded. */
  char *shown = vab_template_to_yaml(ctx, t);
  assert_null(strstr(shown, "s3cr3t"));
  assert_non_null(strstr(shown, "description: by ${env:VAB_TEST_TOKEN}"));
  assert_non_null(strstr(shown, "- echo ${env:VAB_TEST_TOKEN} >/etc/t"));
  free(shown);
  /* Later stages quoting the value (a failing step, the build log) show
   * it as written too, even cut short by a "%.20s". */
  vab_log(ctx, VAB_LOG_INFO, "running: %s", t->description);
  assert_string_equal(seen, "running: by ${env:VAB_TEST_TOKEN}");
  vab_log(ctx, VAB_LOG_INFO, "step '%.20s' failed", t->description);
  assert_string_equal(seen, "step 'by ${env:VAB_TEST_TOKEN}' failed");
  vab_error(ctx, VAB_E_PROVISION, "'%s' exited with status 1",
            t->description + 3);
  assert_string_equal(vab_last_error(ctx)->message,
                      "'${env:VAB_TEST_TOKEN}' exited with status 1");
  /* Progress labels too. */
  char step[512] = "";
  vab_ctx_set_progress(ctx, progress_capture, step);
  assert_int_equal(vab_progress(ctx, VAB_PHASE_PROVISION, t->description, 0,
                                0), 0);
  assert_string_equal(step, "by ${env:VAB_TEST_TOKEN}");
  vab_template_free(t);
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_variable_precedence),
    cmocka_unit_test(test_escapes_and_builtins),
    cmocka_unit_test(test_environment_reference),
    cmocka_unit_test(test_environment_values_are_not_shown),
    cmocka_unit_test(test_environment_values_reach_the_build_only),
    cmocka_unit_test(test_unknown_variable_is_located),
    cmocka_unit_test(test_bad_variable_names),
    cmocka_unit_test(test_extends_merges),
    cmocka_unit_test(test_extends_errors_point_into_the_right_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
