/* The booted appliance over SSH (builder/booted.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builder/booted.h"
#include "builder/guest.h"
#include "builder/ssh.h"
#include "builder/vm.h"
#include "common/buf.h"
#include "common/size.h"
#include "common/cleanup.h"
#include "common/clock.h"
#include "common/io.h"
#include "common/shell-quote.h"
#include "common/subprocess.h"
#include "vab/progress.h"

#define TAIL_LINES 20
#define POLL_MS 1000                 /* between two SSH attempts */
#define SHUTDOWN_MS (120 * 1000)     /* poweroff to qemu's exit */
#define HOST_KEY "/etc/ssh/ssh_host_ed25519_key"
#define SSHD_DROP_IN "/etc/ssh/sshd_config.d/00-vab-build.conf"
#define STEP_DIR "/run/vab-step"     /* tmpfs: gone at the next boot */
#define BOOT_ID "/proc/sys/kernel/random/boot_id"

struct vab_booted {
  struct vab_guest base;             /* what the steps get */
  struct vab_ctx *ctx;
  struct vab_booted_opts opts;
  struct vab_ssh ssh;
  struct vab_vm vm;
  bool vm_running;
  char host_key[512];                /* the guest's ed25519 public key */
  double boot_seconds;
  const char *step;                  /* label of the running step */
  uint64_t step_timeout_ms;
  double deadline;                   /* now_seconds() by which calls end */
  char *tail[TAIL_LINES];            /* the last output lines */
  size_t tail_next;
  struct buf tail_text;
};

static struct vab_booted *booted_of(struct vab_guest *g) {
  return (struct vab_booted *)g;
}

/* ---- the builder VM's half: prepare and restore ---- */

/* Runs in the builder VM's chroot with policy-rc.d still in place, so
 * apt starts no sshd there.  Every change leaves a mark in $S that
 * restore reads. */
static const char prepare_script[] =
  "set -e\n"
  "S=" VAB_BOOTED_STATE_DIR "\n"
  "if [ ! -x /usr/sbin/sshd ]; then\n"
  "  dpkg-query -W -f '${Package}\\n' | sort > \"$S/packages-before\"\n"
  /* Package lists an earlier step fetched save minutes under TCG; stale
   * ones are fetched again. */
  "  I='apt-get install -y -q --no-install-recommends openssh-server'\n"
  "  if ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 && $I; then :; else\n"
  "    apt-get update -q\n"
  "    $I\n"
  "  fi\n"
  "  dpkg-query -W -f '${Package}\\n' | sort > \"$S/packages-after\"\n"
  "  comm -13 \"$S/packages-before\" \"$S/packages-after\" > \"$S/packages-added\"\n"
  "fi\n"
  "if [ ! -e " HOST_KEY " ]; then\n"
  "  ssh-keygen -q -t ed25519 -N '' -C '' -f " HOST_KEY "\n"
  "  : > \"$S/added-host-key\"\n"
  "fi\n"
  "if [ ! -d /root/.ssh ]; then\n"
  "  mkdir -m 0700 /root/.ssh\n"
  "  : > \"$S/added-ssh-dir\"\n"
  "fi\n"
  "if [ -e /root/.ssh/authorized_keys ] || [ -L /root/.ssh/authorized_keys ]; then\n"
  "  cp -a /root/.ssh/authorized_keys \"$S/authorized_keys\"\n"
  "  cat \"$S/authorized_keys\" > \"$S/authorized_keys.new\"\n"
  "fi\n"
  "cat \"$S/vab.pub\" >> \"$S/authorized_keys.new\"\n"
  "rm -f /root/.ssh/authorized_keys\n"
  "install -m 0600 \"$S/authorized_keys.new\" /root/.ssh/authorized_keys\n"
  "rm -f \"$S/authorized_keys.new\"\n"
  /* First value wins in sshd_config: Debian's includes the drop-ins at
   * its top. */
  "mkdir -p /etc/ssh/sshd_config.d\n"
  "printf '%s\\n' '# vab: for the build only' 'PermitRootLogin prohibit-password'"
  " 'PubkeyAuthentication yes' > " SSHD_DROP_IN "\n"
  "W=/etc/systemd/system/multi-user.target.wants\n"
  "if [ ! -e \"$W/ssh.service\" ] && "
  "[ ! -e /etc/systemd/system/sockets.target.wants/ssh.socket ]; then\n"
  "  mkdir -p \"$W\"\n"
  "  ln -s /lib/systemd/system/ssh.service \"$W/ssh.service\"\n"
  "  : > \"$S/enabled-ssh\"\n"
  "fi\n"
  /* The booted system starts services: the offline steps' guard goes. */
  "if [ -e /usr/sbin/policy-rc.d ]; then\n"
  "  mv /usr/sbin/policy-rc.d \"$S/policy-rc.d\"\n"
  "fi\n";

/* Runs in the builder VM after the boot: everything prepare recorded is
 * undone, and $S goes. */
static const char restore_script[] =
  "set -e\n"
  "S=" VAB_BOOTED_STATE_DIR "\n"
  "[ -d \"$S\" ] || exit 0\n"
  "if [ -e \"$S/policy-rc.d\" ]; then\n"
  "  mv -f \"$S/policy-rc.d\" /usr/sbin/policy-rc.d\n"
  "fi\n"
  "rm -f /root/.ssh/authorized_keys\n"
  "if [ -e \"$S/authorized_keys\" ] || [ -L \"$S/authorized_keys\" ]; then\n"
  "  cp -a \"$S/authorized_keys\" /root/.ssh/authorized_keys\n"
  "fi\n"
  "if [ -e \"$S/added-ssh-dir\" ]; then rmdir /root/.ssh 2>/dev/null || :; fi\n"
  "rm -f " SSHD_DROP_IN "\n"
  "if [ -e \"$S/enabled-ssh\" ]; then\n"
  "  rm -f /etc/systemd/system/multi-user.target.wants/ssh.service\n"
  "fi\n"
  "if [ -e \"$S/added-host-key\" ]; then rm -f " HOST_KEY " " HOST_KEY ".pub; fi\n"
  "if [ -s \"$S/packages-added\" ]; then\n"
  "  xargs apt-get purge -y -q < \"$S/packages-added\"\n"
  "  rm -f /etc/ssh/ssh_host_*\n"
  "  rmdir /etc/ssh/sshd_config.d 2>/dev/null || :\n"
  "fi\n"
  "rm -rf \"$S\"\n";

int vab_booted_prepare(struct vab_booted *b, struct vab_guest *builder) {
  struct vab_ctx *ctx = b->ctx;
  bool have_sshd = false;
  if (vab_guest_exists(builder, "/usr/sbin/sshd", &have_sshd) < 0)
    return -1;
  if (!have_sshd) {
    vab_log(ctx, VAB_LOG_INFO,
            "booted steps: the image has no sshd; adding openssh-server for "
            "them (removed again after them), network on");
    if (vab_guest_set_network(builder, true) < 0)
      return -1;
  }
  char pub[600];
  snprintf(pub, sizeof pub, "%s\n", b->ssh.public_key);
  /* $S holds vab's public key for the script, and the marks. */
  int r = 0;
  if (vab_guest_rm_rf(builder, VAB_BOOTED_STATE_DIR) < 0 ||
      vab_guest_mkdir_p(builder, VAB_BOOTED_STATE_DIR) < 0 ||
      vab_guest_chmod(builder, 0700, VAB_BOOTED_STATE_DIR) < 0 ||
      vab_guest_write(builder, VAB_BOOTED_STATE_DIR "/vab.pub", pub,
                      strlen(pub)) < 0)
    r = -1;
  if (r == 0)
    r = vab_guest_script_at(builder, prepare_script, NULL, NULL,
                            "preparing the image for SSH");
  char *key = NULL;
  if (r == 0)
    r = vab_guest_read(builder, HOST_KEY ".pub", &key, NULL);
  if (r == 0) {
    snprintf(b->host_key, sizeof b->host_key, "%s", key);
    b->host_key[strcspn(b->host_key, "\r\n")] = '\0';
    /* Checked now, before a boot that could not be trusted. */
    struct buf line = BUF_INIT;
    r = vab_ssh_known_hosts_line(ctx, &line, VAB_SSH_HOST, 22, b->host_key);
    buf_release(&line);
  }
  free(key);
  return r;
}

int vab_booted_restore(struct vab_booted *b, struct vab_guest *builder) {
  vab_log(b->ctx, VAB_LOG_INFO,
          "booted steps: removing vab's key and what it added for SSH");
  return vab_guest_script_at(builder, restore_script, NULL, NULL,
                             "removing vab's SSH access");
}

/* ---- SSH calls, bounded by the step's timeout ---- */

static void tail_push(struct vab_booted *b, const char *line) {
  free(b->tail[b->tail_next]);
  b->tail[b->tail_next] = strdup(line);
  b->tail_next = (b->tail_next + 1) % TAIL_LINES;
}

static void tail_reset(struct vab_booted *b) {
  for (size_t i = 0; i < TAIL_LINES; i++) {
    free(b->tail[i]);
    b->tail[i] = NULL;
  }
  b->tail_next = 0;
}

static void tail_collect(struct vab_booted *b) {
  buf_truncate(&b->tail_text, 0);
  for (size_t i = 0; i < TAIL_LINES; i++) {
    const char *line = b->tail[(b->tail_next + i) % TAIL_LINES];
    if (line == NULL)
      continue;
    if (b->tail_text.len > 0)
      buf_putc(&b->tail_text, '\n');
    buf_puts(&b->tail_text, line);
  }
}

/* Guest output: to the build log as it comes, the last lines kept. */
static void output_line(void *opaque, const char *line) {
  struct vab_booted *b = opaque;
  char *clean = text_plain_copy(line);
  if (clean == NULL)
    return;
  vab_log(b->ctx, VAB_LOG_DEBUG, "guest: %s", clean);
  tail_push(b, clean);
  free(clean);
}

static uint64_t remaining_ms(const struct vab_booted *b) {
  double left = b->deadline - now_seconds();
  return left <= 0 ? 0 : (uint64_t)(left * 1000) + 1;
}

static int timed_out(struct vab_booted *b, const char *what) {
  char limit[32];
  vab_format_duration_ms(limit, sizeof limit, b->step_timeout_ms);
  return vab_error(b->ctx, VAB_E_PROVISION,
                   "%s: %s did not finish within the step's timeout (%s)",
                   b->step ? b->step : "booted step", what, limit);
}

/* One command over SSH; *status its exit status.  A timeout, Ctrl-C or
 * ssh's own failure (255) is an error naming what. */
static int remote(struct vab_booted *b, const char *what, const char *command,
                  int stdin_fd, int stdout_fd, int *status) {
  uint64_t left = remaining_ms(b);
  if (left == 0)
    return timed_out(b, what);
  vab_log(b->ctx, VAB_LOG_DEBUG, "ssh: %s", command);
  tail_reset(b);
  int r = vab_ssh_run(&b->ssh, command, stdin_fd, stdout_fd, output_line, b,
                      left, status);
  int e = errno;
  tail_collect(b);
  if (r < 0) {
    if (e == ETIMEDOUT)
      return timed_out(b, what);
    if (e == ECANCELED)
      return vab_check_cancel(b->ctx);
    if (e == EINVAL)
      return -1;   /* vab_ssh_argv said why */
    return vab_error_errno(b->ctx, VAB_E_SUBPROCESS, e, "cannot run ssh");
  }
  if (*status == VAB_SSH_FAILED) {
    vab_error(b->ctx, VAB_E_GUEST,
              "booted appliance: %s: ssh to 127.0.0.1:%u failed (exit status "
              "255)", what, b->ssh.port);
    if (b->tail_text.len > 0)
      vab_diag_hint(b->ctx, "ssh said:\n%s", b->tail_text.data);
    return -1;
  }
  return 0;
}

/* remote() that must exit 0. */
static int remote_ok(struct vab_booted *b, const char *what,
                     const char *command, int stdin_fd, int stdout_fd) {
  int status = 0;
  if (remote(b, what, command, stdin_fd, stdout_fd, &status) < 0)
    return -1;
  if (status != 0) {
    vab_error(b->ctx, VAB_E_GUEST,
              "booted appliance: %s failed (exit status %d)", what, status);
    if (b->tail_text.len > 0)
      vab_diag_hint(b->ctx, "its last output lines:\n%s", b->tail_text.data);
    return -1;
  }
  return 0;
}

/* "WORDS 'quoted path'" commands. */
static int command_with(struct vab_ctx *ctx, struct buf *cmd,
                        const char *before, const char *path,
                        const char *after) {
  if (buf_puts(cmd, before) < 0 || shell_quote(cmd, path) < 0 ||
      buf_puts(cmd, after) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

/* A temporary host file in the key folder, open for reading and writing
 * and already unlinked. */
static int temp_fd(struct vab_booted *b) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tmp-XXXXXX", b->ssh.dir);
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0)
    return vab_error_errno(b->ctx, VAB_E_IO, errno,
                           "cannot create a temporary file in '%s'",
                           b->ssh.dir);
  unlink(path);
  return fd;
}

static int write_to_guest(struct vab_booted *b, int fd, const char *path,
                          const char *what) {
  struct buf cmd = BUF_INIT;
  int r = command_with(b->ctx, &cmd, "cat > ", path, "");
  if (r == 0)
    r = remote_ok(b, what, cmd.data, fd, -1);
  buf_release(&cmd);
  return r;
}

static int ssh_write(struct vab_guest *g, const char *path, const void *data,
                     size_t len) {
  struct vab_booted *b = booted_of(g);
  int fd = temp_fd(b);
  if (fd < 0)
    return -1;
  int r = 0;
  if (write_full(fd, data, len) < 0 || lseek(fd, 0, SEEK_SET) < 0)
    r = vab_error_errno(b->ctx, VAB_E_IO, errno,
                        "cannot write a temporary file");
  char what[256];
  snprintf(what, sizeof what, "writing '%.200s'", path);
  if (r == 0)
    r = write_to_guest(b, fd, path, what);
  close(fd);
  return r;
}

static int ssh_upload(struct vab_guest *g, const char *host_path,
                      const char *path) {
  struct vab_booted *b = booted_of(g);
  int fd = open(host_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vab_error_errno(b->ctx, VAB_E_IO, errno, "cannot open '%s'",
                           host_path);
  char what[256];
  snprintf(what, sizeof what, "uploading '%.200s'", path);
  int r = write_to_guest(b, fd, path, what);
  close(fd);
  return r;
}

static void tar_line(void *opaque, const char *line) {
  vab_log(opaque, VAB_LOG_DEBUG, "tar: %s", line);
}

/* tar of the host's path into fd (the folder or file, by its name). */
static int host_tar(struct vab_booted *b, const char *host_path, int fd) {
  CLEANUP_FREE char *copy1 = strdup(host_path);
  CLEANUP_FREE char *copy2 = strdup(host_path);
  if (copy1 == NULL || copy2 == NULL)
    return vab_error(b->ctx, VAB_E_NOMEM, "out of memory");
  char *argv[] = {"tar", "-C", dirname(copy1), "-cf", "-", "--",
                  basename(copy2), NULL};
  struct subprocess_opts opts = SUBPROCESS_OPTS_INIT;
  opts.stdout_fd = fd;
  struct subprocess p;
  if (subprocess_start(&p, argv, &opts) < 0)
    return vab_error_errno(b->ctx, VAB_E_SUBPROCESS, errno, "cannot run tar");
  int status = 0;
  if (subprocess_wait(&p, tar_line, b->ctx, NULL, NULL, 0, &status) < 0)
    return vab_error_errno(b->ctx, VAB_E_SUBPROCESS, errno, "tar failed");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return vab_error(b->ctx, VAB_E_SUBPROCESS,
                     "tar of '%s' failed; the build log has its output",
                     host_path);
  return 0;
}

static int ssh_copy_in(struct vab_guest *g, const char *host_path,
                       const char *dir) {
  struct vab_booted *b = booted_of(g);
  int fd = temp_fd(b);
  if (fd < 0)
    return -1;
  int r = host_tar(b, host_path, fd);
  if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
    r = vab_error_errno(b->ctx, VAB_E_IO, errno, "cannot rewind a file");
  struct buf cmd = BUF_INIT;
  if (r == 0)
    r = command_with(b->ctx, &cmd, "tar --no-same-owner -xf - -C ", dir, "");
  char what[256];
  snprintf(what, sizeof what, "copying '%.100s' into '%.100s'", host_path, dir);
  if (r == 0)
    r = remote_ok(b, what, cmd.data, fd, -1);
  buf_release(&cmd);
  close(fd);
  return r;
}

static int ssh_read(struct vab_guest *g, const char *path, char **data,
                    size_t *len) {
  struct vab_booted *b = booted_of(g);
  int fd = temp_fd(b);
  if (fd < 0)
    return -1;
  struct buf cmd = BUF_INIT;
  int r = command_with(b->ctx, &cmd, "cat -- ", path, "");
  char what[256];
  snprintf(what, sizeof what, "reading '%.200s'", path);
  if (r == 0)
    r = remote_ok(b, what, cmd.data, -1, fd);
  buf_release(&cmd);
  struct stat st;
  char *out = NULL;
  if (r == 0 && (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0))
    r = vab_error_errno(b->ctx, VAB_E_IO, errno, "cannot read back '%s'",
                        path);
  if (r == 0 && (out = malloc((size_t)st.st_size + 1)) == NULL)
    r = vab_error(b->ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0 && read_full(fd, out, (size_t)st.st_size) != st.st_size)
    r = vab_error_errno(b->ctx, VAB_E_IO, errno, "cannot read back '%s'",
                        path);
  close(fd);
  if (r < 0) {
    free(out);
    return -1;
  }
  out[st.st_size] = '\0';
  *data = out;
  if (len != NULL)
    *len = (size_t)st.st_size;
  return 0;
}

static int simple(struct vab_guest *g, const char *what, const char *before,
                  const char *path, const char *after) {
  struct vab_booted *b = booted_of(g);
  struct buf cmd = BUF_INIT;
  int r = command_with(b->ctx, &cmd, before, path, after);
  char label[256];
  snprintf(label, sizeof label, "%s '%.200s'", what, path);
  if (r == 0)
    r = remote_ok(b, label, cmd.data, -1, -1);
  buf_release(&cmd);
  return r;
}

static int ssh_mkdir_p(struct vab_guest *g, const char *path) {
  return simple(g, "mkdir -p", "mkdir -p -- ", path, "");
}

static int ssh_chmod(struct vab_guest *g, unsigned mode, const char *path) {
  char before[32];
  snprintf(before, sizeof before, "chmod %04o -- ", mode & 07777);
  return simple(g, "chmod", before, path, "");
}

static int ssh_rm_rf(struct vab_guest *g, const char *path) {
  return simple(g, "rm -rf", "rm -rf -- ", path, "");
}

static int ssh_exists(struct vab_guest *g, const char *path, bool *exists) {
  struct vab_booted *b = booted_of(g);
  struct buf cmd = BUF_INIT;
  int r = command_with(b->ctx, &cmd, "if test -e ", path, "");
  if (r == 0 && (buf_puts(&cmd, " || test -L ") < 0 ||
                 shell_quote(&cmd, path) < 0 ||
                 buf_puts(&cmd, "; then exit 0; else exit 3; fi") < 0))
    r = vab_error(b->ctx, VAB_E_NOMEM, "out of memory");
  int status = 0;
  char what[256];
  snprintf(what, sizeof what, "looking for '%.200s'", path);
  if (r == 0)
    r = remote(b, what, cmd.data, -1, -1, &status);
  buf_release(&cmd);
  if (r == 0 && status != 0 && status != 3)
    r = vab_error(b->ctx, VAB_E_GUEST, "booted appliance: %s failed (exit "
                  "status %d)", what, status);
  if (r == 0)
    *exists = status == 0;
  return r;
}

static int ssh_symlink(struct vab_guest *g, const char *target,
                       const char *linkname) {
  struct vab_booted *b = booted_of(g);
  struct buf cmd = BUF_INIT;
  int r = 0;
  if (buf_puts(&cmd, "rm -rf -- ") < 0 || shell_quote(&cmd, linkname) < 0 ||
      buf_puts(&cmd, " && ln -s -- ") < 0 || shell_quote(&cmd, target) < 0 ||
      buf_putc(&cmd, ' ') < 0 || shell_quote(&cmd, linkname) < 0)
    r = vab_error(b->ctx, VAB_E_NOMEM, "out of memory");
  char what[256];
  snprintf(what, sizeof what, "making the link '%.200s'", linkname);
  if (r == 0)
    r = remote_ok(b, what, cmd.data, -1, -1);
  buf_release(&cmd);
  return r;
}

/* The script arrives on stdin into a private folder on /run (tmpfs: no
 * trace on the disk) and runs from there as a program, so that its #!
 * line counts as in the builder VM, with the same fixed environment. */
static int ssh_script(struct vab_guest *g, const char *script,
                      const char *const *env, int *status) {
  struct vab_booted *b = booted_of(g);
  static const char *const base[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", NULL,
  };
  struct buf cmd = BUF_INIT;
  int r = 0;
  if (buf_puts(&cmd, "umask 077 && rm -rf " STEP_DIR " && mkdir " STEP_DIR
                     " && cat > " STEP_DIR "/script && chmod 700 " STEP_DIR
                     "/script && {\numask 022\ncd /\n") < 0)
    r = vab_error(b->ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = vab_ssh_export_env(b->ctx, &cmd, base);
  const char *epoch = getenv("SOURCE_DATE_EPOCH");
  if (r == 0 && epoch != NULL && *epoch != '\0' &&
      (buf_puts(&cmd, "export SOURCE_DATE_EPOCH=") < 0 ||
       shell_quote(&cmd, epoch) < 0 || buf_putc(&cmd, '\n') < 0))
    r = vab_error(b->ctx, VAB_E_NOMEM, "out of memory");
  if (r == 0)
    r = vab_ssh_export_env(b->ctx, &cmd, env);
  if (r == 0 && buf_puts(&cmd, STEP_DIR "/script </dev/null 2>&1\n}; "
                               "vab_status=$?; rm -rf " STEP_DIR
                               "; exit $vab_status") < 0)
    r = vab_error(b->ctx, VAB_E_NOMEM, "out of memory");
  int fd = r == 0 ? temp_fd(b) : -1;
  if (r == 0 && fd < 0)
    r = -1;
  if (r == 0 && (write_full(fd, script, strlen(script)) < 0 ||
                 lseek(fd, 0, SEEK_SET) < 0))
    r = vab_error_errno(b->ctx, VAB_E_IO, errno,
                        "cannot write a temporary file");
  if (r == 0)
    r = remote(b, "the script", cmd.data, fd, -1, status);
  if (fd >= 0)
    close(fd);
  buf_release(&cmd);
  return r;
}

static const char *ssh_output_tail(const struct vab_guest *g) {
  const struct vab_booted *b = (const struct vab_booted *)g;
  return b->tail_text.data != NULL ? b->tail_text.data : "";
}

static int ssh_endpoint(struct vab_guest *g, struct vab_guest_ssh *ssh) {
  struct vab_booted *b = booted_of(g);
  ssh->host = VAB_SSH_HOST;
  ssh->port = b->ssh.port;
  ssh->user = VAB_SSH_USER;
  ssh->identity_file = b->ssh.identity;
  ssh->known_hosts_file = b->ssh.known_hosts;
  return 0;
}

/* ---- boot, reboot, shutdown ---- */

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int vm_failed(struct vab_booted *b, const char *what) {
  struct buf m = BUF_INIT;
  buf_puts(&m, what);
  vab_vm_serial_tail(&m, b->opts.serial_log_path);
  vab_error(b->ctx, VAB_E_GUEST, "%s", m.data ? m.data : what);
  buf_release(&m);
  return -1;
}

/* Poll until `cat boot_id` answers over SSH with an id other than
 * not_id (NULL: any), qemu exits, or the deadline passes. */
static int wait_for_ssh(struct vab_booted *b, const char *not_id,
                        const char *what, double deadline) {
  for (;;) {
    if (vab_check_cancel(b->ctx) < 0)
      return -1;
    int status = 0;
    if (b->vm_running)
      vab_vm_drain(&b->vm);
    if (b->vm_running && vab_vm_exited(&b->vm, &status)) {
      b->vm_running = false;
      char how[96], m[512];
      subprocess_describe_status(status, how, sizeof how);
      snprintf(m, sizeof m, "booted appliance: qemu exited (%s) before SSH "
               "answered%s%s", how, vab_vm_last_line(&b->vm)[0] ? ": " : "",
               vab_vm_last_line(&b->vm));
      return vm_failed(b, m);
    }
    double left = deadline - now_seconds();
    if (left <= 0) {
      char m[256];
      snprintf(m, sizeof m, "booted appliance: %s: SSH on 127.0.0.1:%u did "
               "not answer within the step's timeout", what, b->ssh.port);
      return vm_failed(b, m);
    }
    int fd = temp_fd(b);
    if (fd < 0)
      return -1;
    uint64_t limit = left > 30 ? 30000 : (uint64_t)(left * 1000) + 1;
    int r = vab_ssh_run(&b->ssh, "cat " BOOT_ID, -1, fd, NULL, NULL, limit,
                        &status);
    if (r < 0 && errno == ECANCELED) {
      close(fd);
      return vab_check_cancel(b->ctx);
    }
    char id[64] = "";
    if (r == 0 && status == 0 && lseek(fd, 0, SEEK_SET) == 0) {
      ssize_t n = read_full(fd, id, sizeof id - 1);
      id[n > 0 ? n : 0] = '\0';
      id[strcspn(id, "\r\n")] = '\0';
    }
    close(fd);
    if (id[0] != '\0' && (not_id == NULL || strcmp(id, not_id) != 0))
      return 0;
    sleep_ms(POLL_MS);
  }
}

int vab_booted_boot(struct vab_booted *b, uint64_t timeout_ms) {
  if (b->host_key[0] == '\0')
    return vab_error(b->ctx, VAB_E_INTERNAL, "booted: boot before prepare");
  if (!subprocess_have_program("ssh")) {
    vab_error(b->ctx, VAB_E_SUBPROCESS,
              "booted steps need OpenSSH's ssh, which is not on PATH");
    vab_diag_hint(b->ctx, "install the Debian package openssh-client");
    return -1;
  }
  const uint16_t ports[] = {22};
  struct vab_vm_opts vo = {
    .disk_path = b->opts.disk_path, .disk_format = b->opts.disk_format,
    .cache = "writeback",
    .firmware = b->opts.firmware, .accel = b->opts.accel,
    .cpus = b->opts.cpus, .memory = b->opts.memory,
    .work_dir = b->opts.work_dir, .serial_log_path = b->opts.serial_log_path,
    .guest_ports = ports, .n_ports = 1,
  };
  vab_log(b->ctx, VAB_LOG_INFO, "booting the appliance for its booted steps "
          "(%s, serial log %s)",
          b->opts.accel == VAB_ACCEL_KVM ? "KVM" : "TCG",
          b->opts.serial_log_path);
  double start = now_seconds();
  b->vm_running = true;
  if (vab_vm_start(b->ctx, &vo, &b->vm) < 0)
    return -1;
  b->ssh.port = b->vm.host_ports[0];
  if (vab_ssh_set_host_key(&b->ssh, b->host_key) < 0)
    return -1;
  if (wait_for_ssh(b, NULL, "boot", start + (double)timeout_ms / 1000.0) < 0)
    return -1;
  b->boot_seconds = now_seconds() - start;
  vab_log(b->ctx, VAB_LOG_INFO, "booted appliance: SSH answered after %.1f s",
          b->boot_seconds);
  return 0;
}

static int ssh_reboot(struct vab_guest *g) {
  struct vab_booted *b = booted_of(g);
  char *id = NULL;
  if (ssh_read(g, BOOT_ID, &id, NULL) < 0)
    return -1;
  id[strcspn(id, "\r\n")] = '\0';
  vab_log(b->ctx, VAB_LOG_INFO, "booted appliance: rebooting");
  int status = 0;
  /* The connection may drop before ssh sees the command's status: only
   * the new boot id says the reboot happened. */
  uint64_t left = remaining_ms(b);
  if (left == 0) {
    free(id);
    return timed_out(b, "reboot");
  }
  tail_reset(b);
  int r = vab_ssh_run(&b->ssh, "systemctl reboot", -1, -1, output_line, b,
                      left < 30000 ? left : 30000, &status);
  if (r < 0 && errno == ECANCELED) {
    free(id);
    return vab_check_cancel(b->ctx);
  }
  double start = now_seconds();
  r = wait_for_ssh(b, id, "reboot", b->deadline);
  free(id);
  if (r == 0)
    vab_log(b->ctx, VAB_LOG_INFO, "booted appliance: SSH answered again "
            "after %.1f s", now_seconds() - start);
  return r;
}

int vab_booted_shutdown(struct vab_booted *b) {
  if (!b->vm_running)
    return 0;
  vab_log(b->ctx, VAB_LOG_INFO, "booted appliance: powering off");
  b->deadline = now_seconds() + SHUTDOWN_MS / 1000.0;
  b->step = "shutdown";
  b->step_timeout_ms = SHUTDOWN_MS;
  int status = 0;
  tail_reset(b);
  vab_ssh_run(&b->ssh, "systemctl poweroff", -1, -1, output_line, b, 30000,
              &status);
  for (;;) {
    vab_vm_drain(&b->vm);
    if (vab_vm_exited(&b->vm, &status)) {
      b->vm_running = false;
      vab_vm_stop(&b->vm);
      return 0;
    }
    if (vab_check_cancel(b->ctx) < 0)
      return -1;
    if (now_seconds() >= b->deadline)
      break;
    sleep_ms(200);
  }
  vab_vm_stop(&b->vm);
  b->vm_running = false;
  return vm_failed(b, "booted appliance: it did not power off within 120 s "
                      "(qemu was killed; its disk is not used)");
}

void vab_booted_begin_step(struct vab_booted *b, const char *label,
                           uint64_t timeout_ms) {
  b->step = label;
  b->step_timeout_ms = timeout_ms;
  b->deadline = now_seconds() + (double)timeout_ms / 1000.0;
}

double vab_booted_boot_seconds(const struct vab_booted *b) {
  return b->boot_seconds;
}

struct vab_guest *vab_booted_guest(struct vab_booted *b) {
  return &b->base;
}

static const struct vab_guest_ops ssh_ops = {
  .name = "ssh",
  .write = ssh_write,
  .upload = ssh_upload,
  .copy_in = ssh_copy_in,
  .read = ssh_read,
  .mkdir_p = ssh_mkdir_p,
  .chmod = ssh_chmod,
  .exists = ssh_exists,
  .rm_rf = ssh_rm_rf,
  .symlink = ssh_symlink,
  .script = ssh_script,
  .output_tail = ssh_output_tail,
  .ssh_endpoint = ssh_endpoint,
  .reboot = ssh_reboot,
};

int vab_booted_new(struct vab_ctx *ctx, const struct vab_booted_opts *opts,
                   struct vab_booted **out) {
  struct vab_booted *b = calloc(1, sizeof *b);
  if (b == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  b->base.ops = &ssh_ops;
  b->base.ctx = ctx;
  b->ctx = ctx;
  b->opts = *opts;
  b->vm.qemu.pid = 0;
  b->vm.qemu.output_fd = -1;
  b->deadline = now_seconds() + 30 * 60;
  b->step_timeout_ms = 30 * 60 * 1000;
  if (vab_ssh_init(ctx, opts->work_dir, &b->ssh) < 0) {
    vab_booted_free(b);
    return -1;
  }
  *out = b;
  return 0;
}

void vab_booted_free(struct vab_booted *b) {
  if (b == NULL)
    return;
  if (b->vm_running)
    vab_vm_stop(&b->vm);
  vab_ssh_cleanup(&b->ssh);
  tail_reset(b);
  buf_release(&b->tail_text);
  free(b);
}
