/* The ansible step against a fake booted guest and a fake ansible-playbook
 * (a shell script first in PATH that records its arguments, environment,
 * working folder and the files it was handed): the exact command line,
 * the inventory, the extra variables and where secrets go, the Python
 * check, a failing playbook, galaxy_file, Ctrl-C, and validate's check for
 * a missing ansible-playbook. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/provisioners/helpers.h"
#include "common/buf.h"
#include "common/fsutil.h"

#define SECRET "s3cr3t-token-value"
#define PLAYBOOK DATA_DIR "/ansible/site.yml"

static char root[] = "/tmp/vab-test-ansible-XXXXXX";
static char bin[64], rec[64], tmp[64], empty[64], only_playbook[64];
static char *saved_path;

static const struct vab_guest_ssh endpoint = {
  .host = "127.0.0.1",
  .port = 2222,
  .user = "root",
  .identity_file = "/run/vab/build/id_ed25519",
  .known_hosts_file = "/run/vab/build/known_hosts",
};

/* The fake records into rec/ (write_script() sets its path first, as the
 * step hands the tool a clean environment); rec/exit, rec/output and
 * rec/sleep steer what it does. */
static const char fake_playbook[] =
  "echo $$ > \"$rec/pid\"\n"
  "printf '%s\\n' \"$@\" > \"$rec/argv\"\n"
  "env | LC_ALL=C sort > \"$rec/env\"\n"
  "pwd -P > \"$rec/cwd\"\n"
  "prev=\n"
  "for arg in \"$@\"; do\n"
  "  case $prev in\n"
  "    -i) cp \"$arg\" \"$rec/inventory\";;\n"
  "    --extra-vars) f=${arg#@}; cp \"$f\" \"$rec/extra-vars\";\n"
  "      stat -c %a \"$f\" > \"$rec/extra-vars.mode\";\n"
  "      stat -c %a \"${f%/*}\" > \"$rec/folder.mode\";;\n"
  "  esac\n"
  "  prev=$arg\n"
  "done\n"
  "cp \"$ANSIBLE_CONFIG\" \"$rec/ansible.cfg\"\n"
  "echo 'PLAY [all] ***'\n"
  "echo 'TASK [web : template] ***'\n"
  "[ -f \"$rec/output\" ] && cat \"$rec/output\"\n"
  "[ -f \"$rec/sleep\" ] && exec sleep \"$(cat \"$rec/sleep\")\"\n"
  "exit \"$(cat \"$rec/exit\" 2>/dev/null || echo 0)\"\n";

static const char fake_galaxy[] =
      "printf '%s\\n' \"$@\" > \"$rec/galaxy-argv\"\n"
  "echo '- downloading role example.role'\n"
  "if [ -f \"$rec/galaxy-exit\" ]; then\n"
  "  echo 'ERROR! failed to download the role: <urlopen error [Errno -3] "
  "Temporary failure in name resolution>'\n"
  "  exit \"$(cat \"$rec/galaxy-exit\")\"\n"
  "fi\n";

static void write_text(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_true(fputs(text, f) >= 0);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(path, mode), 0);
}

static void write_script(const char *dir, const char *name, const char *body) {
  char path[256], text[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(text, sizeof text, "#!/bin/sh\nrec='%s'\n%s", rec, body);
  write_text(path, text, 0755);
}

/* A recorded file, whole (NULL when the fake did not write it). */
static char *recorded(const char *name) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", rec, name);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return NULL;
  struct buf b = BUF_INIT;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    assert_int_equal(buf_append(&b, chunk, n), 0);
  fclose(f);
  return b.data != NULL ? buf_detach(&b) : strdup("");
}

static size_t entries_in(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return n;
}

static void set_path(const char *first) {
  char *path = NULL;
  assert_true(asprintf(&path, "%s:%s", first, saved_path) > 0);
  assert_int_equal(setenv("PATH", path, 1), 0);
  free(path);
}

static int group_setup(void **state) {
  (void)state;
  if (mkdtemp(root) == NULL)
    return -1;
  snprintf(bin, sizeof bin, "%s/bin", root);
  snprintf(rec, sizeof rec, "%s/rec", root);
  snprintf(tmp, sizeof tmp, "%s/tmp", root);
  snprintf(empty, sizeof empty, "%s/empty", root);
  snprintf(only_playbook, sizeof only_playbook, "%s/only-playbook", root);
  const char *dirs[] = {bin, rec, tmp, empty, only_playbook};
  for (size_t i = 0; i < 5; i++)
    if (mkdir(dirs[i], 0700) < 0)
      return -1;
  write_script(bin, "ansible-playbook", fake_playbook);
  write_script(bin, "ansible-galaxy", fake_galaxy);
  write_script(only_playbook, "ansible-playbook", fake_playbook);
  saved_path = strdup(getenv("PATH") != NULL ? getenv("PATH") : "/usr/bin:/bin");
  set_path(bin);
  setenv("TMPDIR", tmp, 1);
  setenv("VAB_TEST_ANSIBLE_TOKEN", SECRET, 1);
  setenv("VAB_TEST_ANSIBLE_LEAK", "from-the-caller", 1);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  remove_tree(root);
  free(saved_path);
  return 0;
}

/* Each test: a booted fake with Python, empty records, the fake tools
 * first in PATH, and the build log captured. */
struct logged {
  struct buf text;
  const char *cancel_at;   /* cancel the context when a line holds it */
  struct vab_ctx *ctx;
};
static struct logged logged;

static void capture_log(void *opaque, enum vab_log_level level,
                        const char *line) {
  (void)level;
  struct logged *l = opaque;
  buf_puts(&l->text, line);
  buf_putc(&l->text, '\n');
  if (l->cancel_at != NULL && strstr(line, l->cancel_at) != NULL)
    vab_ctx_cancel(l->ctx);
}

static char progress_seen[256];

static int record_progress(void *opaque, enum vab_phase phase,
                           const char *step, uint64_t done, uint64_t total) {
  (void)opaque;
  (void)done;
  (void)total;
  if (phase == VAB_PHASE_PROVISION)
    snprintf(progress_seen, sizeof progress_seen, "%s", step);
  return 0;
}

static int setup(void **state) {
  if (fixture_setup(state) < 0)
    return -1;
  struct fixture *fx = *state;
  remove_tree(rec);
  if (mkdir(rec, 0700) < 0)
    return -1;
  set_path(bin);
  fake_guest_set_booted(fx->fake, &endpoint);
  fake_guest_add_file(fx->fake, "/usr/bin/python3", "");
  buf_release(&logged.text);
  logged.cancel_at = NULL;
  logged.ctx = fx->ctx;
  vab_ctx_set_log(fx->ctx, capture_log, &logged);
  progress_seen[0] = '\0';
  vab_ctx_set_progress(fx->ctx, record_progress, NULL);
  return 0;
}

static int teardown(void **state) {
  buf_release(&logged.text);
  return fixture_teardown(state);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* As `vab build` loads it: the environment on, so ${env:...} works. */
static void load_env_steps(struct fixture *fx, const char *steps) {
  char text[4096];
  snprintf(text, sizeof text, "%s%s", STEPS_HEAD, steps);
  fx->t = load_text(fx->ctx, text, default_opts());
  if (fx->t == NULL)
    dump_diags(fx->ctx);
  assert_non_null(fx->t);
  assert_int_equal(vab_error_count(fx->ctx), 0);
}

/* The private folder the run used, from the inventory's path in argv. */
static char *run_folder(const char *argv) {
  const char *start = strchr(argv, '\n');
  assert_non_null(start);
  start++;
  const char *end = strstr(start, "/inventory.yml\n");
  assert_non_null(end);
  char *dir = strndup(start, (size_t)(end - start));
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s/vab-ansible-", tmp);
  assert_true(strncmp(dir, prefix, strlen(prefix)) == 0);
  assert_int_equal(strlen(dir), strlen(prefix) + 6);
  return dir;
}

/* The exact command line, environment, inventory and variables; secrets
 * only in the 0600 variables file; the folder gone afterwards; the guest
 * asked for its endpoint and Python, and its staging folder removed. */
static void test_run(void **state) {
  struct fixture *fx = *state;
  load_env_steps(fx, "  - type: ansible\n"
                     "    playbook: ansible/site.yml\n"
                     "    extra_vars:\n"
                     "      site_title: Hello \"world\"\n"
                     "      port: 8080\n"
                     "      ratio: 0.5\n"
                     "      quoted: \"42\"\n"
                     "      enabled: yes\n"
                     "      off_switch: false\n"
                     "      nothing:\n"
                     "      items: [a, 1]\n"
                     "      nested: {k: v, octal: 010}\n"
                     "      token: ${env:VAB_TEST_ANSIBLE_TOKEN}\n");
  char out_path[128];
  snprintf(out_path, sizeof out_path, "%s/output", rec);
  write_text(out_path, "ok: [appliance] => token=" SECRET "\n", 0644);
  assert_int_equal(run_step(fx, 0), 0);

  char *argv = recorded("argv");
  assert_non_null(argv);
  char *dir = run_folder(argv);
  char want[2048];
  snprintf(want, sizeof want,
           "-i\n%s/inventory.yml\n--extra-vars\n@%s/extra-vars.json\n"
           PLAYBOOK "\n",
           dir, dir);
  assert_string_equal(argv, want);
  assert_lacks(argv, SECRET);

  char *env = recorded("env");
  char *path = NULL;
  assert_true(asprintf(&path, "%s:%s", bin, saved_path) > 0);
  snprintf(want, sizeof want,
           "ANSIBLE_CONFIG=%s/ansible.cfg\n"
           "ANSIBLE_LOCAL_TEMP=%s/local\n"
           "ANSIBLE_NOCOLOR=1\n"
           "ANSIBLE_ROLES_PATH=%s/roles:" DATA_DIR "/ansible/roles\n"
           "HOME=%s/home\n"
           "LC_ALL=C.UTF-8\n"
           "PATH=%s\n",
           dir, dir, dir, dir, path);
  assert_contains(env, want);
  snprintf(want, sizeof want, "TMPDIR=%s/local\n", dir);
  assert_contains(env, want);
  /* Nothing of the caller's environment but PATH (sh adds PWD itself). */
  assert_lacks(env, "VAB_TEST_ANSIBLE_LEAK");
  assert_lacks(env, SECRET);
  for (char *line = env; *line != '\0';) {
    char *end = strchr(line, '\n');
    assert_non_null(end);
    bool known = false;
    static const char *const names[] = {
      "ANSIBLE_CONFIG=", "ANSIBLE_LOCAL_TEMP=", "ANSIBLE_NOCOLOR=",
      "ANSIBLE_ROLES_PATH=", "HOME=", "LC_ALL=", "PATH=", "TMPDIR=",
      "PWD=", "OLDPWD=", "SHLVL=", "_=", NULL};
    for (size_t i = 0; names[i] != NULL; i++)
      known |= strncmp(line, names[i], strlen(names[i])) == 0;
    if (!known)
      fprintf(stderr, "unexpected: %.*s\n", (int)(end - line), line);
    assert_true(known);
    line = end + 1;
  }

  char *inventory = recorded("inventory");
  assert_string_equal(
      inventory,
      "{\"all\":{\"hosts\":{\"appliance\":{\"ansible_host\":\"127.0.0.1\","
      "\"ansible_port\":2222,\"ansible_user\":\"root\","
      "\"ansible_connection\":\"ssh\","
      "\"ansible_ssh_private_key_file\":\"/run/vab/build/id_ed25519\","
      "\"ansible_ssh_common_args\":\"-F none "
      "-o UserKnownHostsFile=/run/vab/build/known_hosts "
      "-o GlobalKnownHostsFile=/dev/null "
      "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\","
      "\"ansible_python_interpreter\":\"/usr/bin/python3\"}}}}\n");
  char *vars = recorded("extra-vars");
  assert_string_equal(
      vars, "{\"site_title\":\"Hello \\\"world\\\"\",\"port\":8080,"
            "\"ratio\":0.5,\"quoted\":\"42\",\"enabled\":true,"
            "\"off_switch\":false,\"nothing\":null,\"items\":[\"a\",1],"
            "\"nested\":{\"k\":\"v\",\"octal\":\"010\"},"
            "\"token\":\"" SECRET "\"}\n");
  char *mode = recorded("extra-vars.mode");
  assert_string_equal(mode, "600\n");
  char *folder_mode = recorded("folder.mode");
  assert_string_equal(folder_mode, "700\n");
  char *cfg = recorded("ansible.cfg");
  assert_contains(cfg, "host_key_checking = True\n");
  assert_contains(cfg, "retry_files_enabled = False\n");
  assert_contains(cfg, "nocolor = True\n");
  assert_contains(cfg, "remote_tmp = /tmp/.vab-ansible\n");
  assert_contains(cfg, "ssh_args = -o ControlMaster=no -o ControlPath=none\n");
  char *cwd = recorded("cwd");
  char *real = realpath(DATA_DIR "/ansible", NULL);
  snprintf(want, sizeof want, "%s\n", real);
  assert_string_equal(cwd, want);

  /* The output reached the log, the secret in it hidden. */
  assert_contains(logged.text.data, "ansible-playbook: TASK [web : template] ***\n");
  assert_contains(logged.text.data,
                  "ansible-playbook: ok: [appliance] => "
                  "token=${env:VAB_TEST_ANSIBLE_TOKEN}\n");
  assert_lacks(logged.text.data, SECRET);
  assert_string_equal(progress_seen, "TASK [web : template]");

  assert_int_equal(entries_in(tmp), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 3);
  expect_call(fx, 0, "ssh_endpoint", NULL);
  expect_call(fx, 1, "exists", "/usr/bin/python3");
  expect_call(fx, 2, "rm_rf", "/tmp/.vab-ansible");
  free(argv);
  free(dir);
  free(env);
  free(path);
  free(inventory);
  free(vars);
  free(mode);
  free(folder_mode);
  free(cfg);
  free(cwd);
  free(real);
}

/* become, tags and skip_tags; no variables file without extra_vars. */
static void test_become_tags(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n"
                 "    become: true\n"
                 "    tags: [web, config]\n"
                 "    skip_tags: slow\n");
  assert_int_equal(run_step(fx, 0), 0);
  char *argv = recorded("argv");
  char *dir = run_folder(argv);
  char want[1024];
  snprintf(want, sizeof want,
           "-i\n%s/inventory.yml\n--become\n--tags\nweb,config\n"
           "--skip-tags\nslow\n" PLAYBOOK "\n",
           dir);
  assert_string_equal(argv, want);
  assert_null(recorded("extra-vars"));
  assert_int_equal(entries_in(tmp), 0);
  free(argv);
  free(dir);
}

/* No Python in the guest: an error at the step, with the step to add, and
 * ansible-playbook never started. */
static void test_no_python(void **state) {
  struct fixture *fx = *state;
  fake_guest_free(fx->fake);
  fx->fake = fake_guest_new(fx->ctx);
  fake_guest_set_booted(fx->fake, &endpoint);
  load_steps(fx, "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n");
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "ansible: the guest has no Python 3 (/usr/bin/python3), "
                   "which Ansible runs its modules with",
                   "install it in a step before this one: "
                   "- {type: packages, install: [python3]}");
  assert_null(recorded("argv"));
  assert_int_equal(entries_in(tmp), 0);
}

/* A guest that is not booted (the builder VM's) fails the endpoint call. */
static void test_not_booted(void **state) {
  struct fixture *fx = *state;
  fake_guest_free(fx->fake);
  fx->fake = fake_guest_new(fx->ctx);
  load_steps(fx, "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n");
  assert_int_equal(run_step(fx, 0), -1);
  assert_int_equal(vab_last_error(fx->ctx)->code, VAB_E_GUEST);
  assert_null(recorded("argv"));
}

/* A failing playbook: at the step, with the exit status and the output's
 * last lines; the guest's staging folder is left to the failed build. */
static void test_playbook_fails(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n");
  char path[128];
  snprintf(path, sizeof path, "%s/exit", rec);
  write_text(path, "2\n", 0644);
  snprintf(path, sizeof path, "%s/output", rec);
  write_text(path, "fatal: [appliance]: FAILED! => {\"msg\": \"boom\"}\n",
             0644);
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "ansible: the playbook 'ansible/site.yml' failed "
                   "(ansible-playbook exit status 2)",
                   "its last output lines:\nPLAY [all] ***\n"
                   "TASK [web : template] ***\n"
                   "fatal: [appliance]: FAILED! => {\"msg\": \"boom\"}");
  assert_int_equal(entries_in(tmp), 0);
  assert_int_equal(fake_guest_call_count(fx->fake), 2);
}

/* galaxy_file: roles installed into the private folder first, which
 * ANSIBLE_ROLES_PATH names; a failure says it needs the network. */
static void test_galaxy(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n"
                 "    galaxy_file: ansible/requirements.yml\n");
  assert_int_equal(run_step(fx, 0), 0);
  char *argv = recorded("argv");
  char *dir = run_folder(argv);
  char *galaxy = recorded("galaxy-argv");
  char want[1024];
  snprintf(want, sizeof want,
           "install\n-r\n" DATA_DIR "/ansible/requirements.yml\n-p\n%s/roles\n",
           dir);
  assert_string_equal(galaxy, want);
  char *env = recorded("env");
  snprintf(want, sizeof want, "ANSIBLE_ROLES_PATH=%s/roles:", dir);
  assert_contains(env, want);
  assert_contains(logged.text.data,
                  "ansible-galaxy: - downloading role example.role\n");
  free(argv);
  free(dir);
  free(galaxy);
  free(env);

  vab_diag_clear(fx->ctx);
  remove_tree(rec);
  assert_int_equal(mkdir(rec, 0700), 0);
  char path[128];
  snprintf(path, sizeof path, "%s/galaxy-exit", rec);
  write_text(path, "1\n", 0644);
  assert_int_equal(run_step(fx, 0), -1);
  expect_run_error(
      fx, VAB_E_PROVISION, 7, 18,
      "ansible: ansible-galaxy could not install the roles of "
      "'ansible/requirements.yml' (exit status 1)",
      "galaxy_file needs the network, to Ansible Galaxy (galaxy.ansible.com) "
      "or the sources the file names; its last output lines:\n"
      "- downloading role example.role\n"
      "ERROR! failed to download the role: <urlopen error [Errno -3] "
      "Temporary failure in name resolution>");
  assert_null(recorded("argv"));
  assert_int_equal(entries_in(tmp), 0);
}

/* Ctrl-C while the playbook runs: killed at once, the folder removed. */
static void test_cancel(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n");
  char path[128];
  snprintf(path, sizeof path, "%s/sleep", rec);
  write_text(path, "60\n", 0644);
  logged.cancel_at = "TASK [web : template]";
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(run_step(fx, 0), -1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_int_equal(vab_last_error(fx->ctx)->code, VAB_E_CANCELLED);
  assert_true(t1.tv_sec - t0.tv_sec < 10);
  char *pid = recorded("pid");
  assert_non_null(pid);
  assert_int_equal(kill((pid_t)atoi(pid), 0), -1);
  assert_int_equal(errno, ESRCH);
  assert_int_equal(entries_in(tmp), 0);
  free(pid);
}

/* The step's inputs: every file of the playbook's folder, sorted by
 * name, and a galaxy_file outside it. */
static void test_inputs(void **state) {
  struct fixture *fx = *state;
  load_steps(fx, "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n"
                 "    galaxy_file: files/site/c.txt\n");
  const struct vab_step *s = &fx->t->steps[0];
  const char *paths[8];
  assert_int_equal(s->step_type->inputs(s->config, paths, 8), 5);
  assert_string_equal(paths[0], DATA_DIR "/ansible/requirements.yml");
  assert_string_equal(paths[1], DATA_DIR "/ansible/roles/web/tasks/main.yml");
  assert_string_equal(paths[2], DATA_DIR "/ansible/site.yml");
  assert_string_equal(paths[3], DATA_DIR "/ansible/templates/page.j2");
  assert_string_equal(paths[4], DATA_DIR "/files/site/c.txt");
  assert_int_equal(s->step_type->inputs(s->config, paths, 2), 5);
  assert_int_equal(s->step_type->flags, VAB_STEP_BOOTED);
  assert_int_equal(s->step_type->booted_timeout_ms, 0);   /* 30 min */
}

/* Without ansible-playbook (or ansible-galaxy) in PATH, validate fails at
 * the step (at galaxy_file) with the install hint. */
static void test_missing_tools(void **state) {
  struct fixture *fx = *state;
  assert_int_equal(setenv("PATH", empty, 1), 0);
  static const char text[] = STEPS_HEAD "  - type: ansible\n"
                                        "    playbook: ansible/site.yml\n";
  assert_null(load_text(fx->ctx, text, NULL));
  expect_diag(fx->ctx, 0, VAB_SEV_ERROR, "t.yaml", 5, 5,
              "an ansible step runs ansible-playbook on this host, and it is "
              "not in PATH",
              "install Ansible: apt-get install ansible");
  assert_int_equal(vab_error_count(fx->ctx), 1);

  vab_diag_clear(fx->ctx);
  assert_int_equal(setenv("PATH", only_playbook, 1), 0);
  static const char galaxy[] =
      STEPS_HEAD "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n"
                 "    galaxy_file: ansible/requirements.yml\n";
  assert_null(load_text(fx->ctx, galaxy, NULL));
  expect_diag(fx->ctx, 0, VAB_SEV_ERROR, "t.yaml", 7, 18,
              "an ansible step runs ansible-galaxy on this host, and it is "
              "not in PATH",
              "install Ansible: apt-get install ansible");
  assert_int_equal(vab_error_count(fx->ctx), 1);
}

/* A playbook beside the template: a warning (the template's folder, its
 * outputs too, becomes an input).  A FIFO in the folder is an error, not
 * skipped. */
static void test_folder_checks(void **state) {
  struct fixture *fx = *state;
  char dir[128], path[160];
  snprintf(dir, sizeof dir, "%s/play", root);
  assert_int_equal(mkdir(dir, 0700), 0);
  snprintf(path, sizeof path, "%s/site.yml", dir);
  write_text(path, "- hosts: all\n", 0644);
  static const char text[] = STEPS_HEAD "  - type: ansible\n"
                                        "    playbook: site.yml\n";
  const struct vab_load_opts opts = {.vocab = vab_template_vocab()};
  struct vab_template *t = NULL;
  assert_int_equal(vab_template_load_data(fx->ctx, "t.yaml", dir, text,
                                          strlen(text), &opts, &t), 0);
  expect_diag(fx->ctx, 0, VAB_SEV_WARNING, "t.yaml", 6, 15,
              "every file in the playbook's folder is an input of this step, "
              "and that folder is the template's own (outputs written there "
              "change the step's key): keep the playbook in a folder of its "
              "own", "");
  const char *paths[4];
  const struct vab_step *s = &t->steps[0];
  assert_int_equal(s->step_type->inputs(s->config, paths, 4), 1);
  assert_string_equal(paths[0], path);
  vab_template_free(t);

  vab_diag_clear(fx->ctx);
  snprintf(path, sizeof path, "%s/pipe", dir);
  assert_int_equal(mkfifo(path, 0600), 0);
  assert_int_equal(vab_template_load_data(fx->ctx, "t.yaml", dir, text,
                                          strlen(text), &opts, &t), -1);
  char want[256];
  snprintf(want, sizeof want,
           "'%s' in the playbook's folder is neither a file nor a folder",
           path);
  expect_diag(fx->ctx, 1, VAB_SEV_ERROR, "t.yaml", 6, 15, want, "");
  remove_tree(dir);
}

/* The real ansible-playbook, through everything vab writes, with a fake
 * `ssh` first in PATH that records its arguments and runs the command on
 * this host (modules reach it on stdin: pipelining).  Variables keep their
 * types, skip_tags works, and ssh gets vab's options.  Skipped without
 * Ansible. */
static const char fake_ssh[] =
  "printf '%s\\n' \"$@\" >> \"$rec/ssh-argv\"\n"
  "for last; do :; done\n"
  "exec /bin/sh -c \"$last\"\n";

static void test_real_ansible(void **state) {
  struct fixture *fx = *state;
  if (access("/usr/bin/ansible-playbook", X_OK) != 0 ||
      access("/usr/bin/python3", X_OK) != 0)
    skip();
  char dir[128], path[256], sshbin[128], out[160], out2[160];
  snprintf(dir, sizeof dir, "%s/real", root);
  snprintf(sshbin, sizeof sshbin, "%s/ssh-bin", root);
  snprintf(out, sizeof out, "%s/out.txt", root);
  snprintf(out2, sizeof out2, "%s/skipped.txt", root);
  assert_int_equal(mkdir(dir, 0700), 0);
  assert_int_equal(mkdir(sshbin, 0700), 0);
  write_script(sshbin, "ssh", fake_ssh);
  char play[1024];
  snprintf(play, sizeof play,
           "- hosts: all\n"
           "  gather_facts: false\n"
           "  tasks:\n"
           "    - ansible.builtin.shell: >-\n"
           "        printf '%%s %%s %%s' '{{ greeting }}' '{{ count + 1 }}'\n"
           "        '{{ flag | ternary(\"on\", \"off\") }}' > %s\n"
           "      tags: [write]\n"
           "    - ansible.builtin.shell: touch %s\n"
           "      tags: [skipped]\n",
           out, out2);
  snprintf(path, sizeof path, "%s/site.yml", dir);
  write_text(path, play, 0644);
  char steps[512];
  snprintf(steps, sizeof steps,
           "  - type: ansible\n"
           "    playbook: %s\n"
           "    extra_vars: {greeting: hello, count: 41, flag: yes}\n"
           "    skip_tags: [skipped]\n",
           path);
  load_steps(fx, steps);
  set_path(sshbin);
  if (run_step(fx, 0) != 0) {
    dump_diags(fx->ctx);
    fprintf(stderr, "%s", logged.text.data);
  }
  assert_int_equal(vab_error_count(fx->ctx), 0);
  char *got = NULL;
  FILE *f = fopen(out, "r");
  assert_non_null(f);
  char line[64] = "";
  assert_non_null(fgets(line, sizeof line, f));
  fclose(f);
  assert_string_equal(line, "hello 42 on");
  assert_int_equal(access(out2, F_OK), -1);
  got = recorded("ssh-argv");
  assert_non_null(got);
  assert_contains(got, "-F\nnone\n");
  assert_contains(got, "-o\nUserKnownHostsFile=/run/vab/build/known_hosts\n");
  assert_contains(got, "-o\nGlobalKnownHostsFile=/dev/null\n");
  assert_contains(got, "-o\nStrictHostKeyChecking=yes\n");
  assert_contains(got, "-o\nIdentitiesOnly=yes\n");
  assert_contains(got, "-o\nPort=2222\n");
  assert_contains(got, "IdentityFile=\"/run/vab/build/id_ed25519\"");
  assert_contains(got, "-o\nControlMaster=no\n");
  assert_contains(got, "127.0.0.1\n");
  assert_contains(logged.text.data, "ansible-playbook: PLAY RECAP");
  assert_int_equal(entries_in(tmp), 0);
  free(got);
  remove_tree(dir);
  remove_tree(sshbin);
}

/* The step's `timeout:` bounds ansible-playbook, which runs on the host.
 * The template loader owns the key (it accepts it on booted steps), so the
 * step's mapping is made by hand here, as the loader would hand it over. */
static void test_timeout(void **state) {
  struct fixture *fx = *state;
  struct vab_node playbook = {.kind = VAB_NODE_SCALAR,
                              .mark = {"t.yaml", 6, 15},
                              .scalar = (char *)"ansible/site.yml"};
  struct vab_node timeout = {.kind = VAB_NODE_SCALAR,
                             .mark = {"t.yaml", 7, 14},
                             .scalar = (char *)"1s"};
  struct vab_node *items[] = {&playbook, &timeout};
  char *keys[] = {(char *)"playbook", (char *)"timeout"};
  struct vab_mark key_marks[] = {{"t.yaml", 6, 5}, {"t.yaml", 7, 5}};
  struct vab_node spec = {.kind = VAB_NODE_MAP, .mark = {"t.yaml", 5, 5},
                          .n = 2, .items = items, .keys = keys,
                          .key_marks = key_marks};
  const struct vab_step_type *type = NULL;
  for (const struct vab_step_type *const *t = vab_step_types(); *t != NULL; t++)
    if (strcmp((*t)->name, "ansible") == 0)
      type = *t;
  assert_non_null(type);
  const struct vab_provisioner *run_half = vab_provisioner_by_name("ansible");
  void *config = NULL;
  assert_int_equal(type->config(fx->ctx, &spec, DATA_DIR, &config), 0);
  assert_int_equal(type->check(fx->ctx, config), 0);
  char path[128];
  snprintf(path, sizeof path, "%s/sleep", rec);
  write_text(path, "60\n", 0644);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(run_half->run(fx->ctx, config, fake_guest_handle(fx->fake)),
                   -1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true(t1.tv_sec - t0.tv_sec < 15);
  expect_run_error(fx, VAB_E_PROVISION, 5, 5,
                   "ansible: ansible-playbook did not finish within the "
                   "step's timeout (1 s)",
                   "raise the step's 'timeout:'");
  char *pid = recorded("pid");
  assert_non_null(pid);
  assert_int_equal(kill((pid_t)atoi(pid), 0), -1);
  assert_int_equal(entries_in(tmp), 0);
  free(pid);
  type->free(config);
}

/* Paths ssh would split or expand are refused before anything runs. */
static void test_unsafe_endpoint(void **state) {
  struct fixture *fx = *state;
  struct vab_guest_ssh odd = endpoint;
  odd.known_hosts_file = "/run/vab/my build/known_hosts";
  fake_guest_set_booted(fx->fake, &odd);
  load_steps(fx, "  - type: ansible\n"
                 "    playbook: ansible/site.yml\n");
  assert_int_equal(run_step(fx, 0), -1);
  assert_int_equal(vab_last_error(fx->ctx)->code, VAB_E_INTERNAL);
  assert_null(recorded("argv"));
  assert_int_equal(entries_in(tmp), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    TEST(test_run),        TEST(test_become_tags), TEST(test_no_python),
    TEST(test_not_booted), TEST(test_playbook_fails), TEST(test_galaxy),
    TEST(test_cancel),     TEST(test_inputs),      TEST(test_missing_tools),
    TEST(test_folder_checks), TEST(test_timeout), TEST(test_unsafe_endpoint),
    TEST(test_real_ansible),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
