/* A qemu VM on a vab disk (builder/vm.h): the boot test's and the booted
 * steps' qemu lifecycle. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builder/vm.h"
#include "common/buf.h"
#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/io.h"
#include "common/qemu-name.h"
#include "vab/progress.h"

#define SERIAL_TAIL_LINES 20
#define QEMU_START_ATTEMPTS 3    /* a free port can be taken before use */

/* OVMF from Debian's ovmf package: 4 MiB builds first. */
static const char *const ovmf_pairs[][2] = {
    {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
    {"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
};

/* A value inside a qemu -drive/-chardev option list: ',' is written ",,". */
static int qemu_escape(struct buf *b, const char *value) {
  for (const char *p = value; *p; p++) {
    if (*p == ',' && buf_putc(b, ',') < 0)
      return -1;
    if (buf_putc(b, *p) < 0)
      return -1;
  }
  return 0;
}

int vab_vm_free_port(struct vab_ctx *ctx, uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot create a socket");
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
    int e = errno;
    close(fd);
    return vab_error_errno(ctx, VAB_E_IO, e,
                           "cannot find a free port on 127.0.0.1");
  }
  close(fd);
  *port = ntohs(addr.sin_port);
  return 0;
}

static int copy_file(struct vab_ctx *ctx, const char *src, const char *dst) {
  CLEANUP_CLOSE int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", src);
  CLEANUP_CLOSE int out =
      open(dst, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
  if (out < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno, "cannot open '%s'", dst);
  char buf[65536];
  for (;;) {
    ssize_t n = read_full(in, buf, sizeof buf);
    if (n < 0)
      return vab_error_errno(ctx, VAB_E_IO, errno, "cannot read '%s'", src);
    if (n == 0)
      return 0;
    if (write_full(out, buf, (size_t)n) < 0)
      return vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", dst);
  }
}

/* UEFI: find OVMF and give this boot its own copy of the variables. */
static int prepare_ovmf(struct vab_vm *vm, const char *work_dir) {
  for (size_t i = 0; i < sizeof ovmf_pairs / sizeof ovmf_pairs[0]; i++) {
    if (access(ovmf_pairs[i][0], R_OK) != 0 ||
        access(ovmf_pairs[i][1], R_OK) != 0)
      continue;
    vm->ovmf_code = ovmf_pairs[i][0];
    int n = snprintf(vm->vars, sizeof vm->vars, "%s/vab-vm-XXXXXX-vars.fd",
                     work_dir);
    if (n < 0 || (size_t)n >= sizeof vm->vars) {
      vm->vars[0] = '\0';
      return vab_error(vm->ctx, VAB_E_USAGE, "work folder path too long: '%s'",
                       work_dir);
    }
    int fd = mkostemps(vm->vars, (int)strlen("-vars.fd"), O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      vm->vars[0] = '\0';
      return vab_error_errno(vm->ctx, VAB_E_IO, e,
                             "cannot create a temporary file in '%s'",
                             work_dir);
    }
    close(fd);
    return copy_file(vm->ctx, ovmf_pairs[i][1], vm->vars);
  }
  vab_error(vm->ctx, VAB_E_UNSUPPORTED,
            "booting a UEFI disk needs OVMF, and '%s' was not found",
            ovmf_pairs[0][0]);
  vab_diag_hint(vm->ctx, "install the Debian package ovmf");
  return -1;
}

static void free_argv(char **argv) {
  for (size_t i = 0; argv[i] != NULL; i++)
    free(argv[i]);
}

static int start_qemu(struct vab_vm *vm, const struct vab_vm_opts *o) {
  struct vab_ctx *ctx = vm->ctx;
  char *argv[48] = {NULL};
  size_t n = 0;
  struct buf drive = BUF_INIT, serial = BUF_INIT, net = BUF_INIT;
  struct buf code = BUF_INIT, vars = BUF_INIT;
  int r = -1;

#define ARG(s)                                                      \
  do {                                                              \
    if ((argv[n++] = strdup(s)) == NULL)                            \
      goto nomem;                                                   \
  } while (0)

  unsigned cpus = o->cpus ? o->cpus : 1;
  uint64_t mib = o->memory / (1024 * 1024);
  if (mib < 256)
    mib = 256;
  char number[32];

  ARG("qemu-system-x86_64");
  if (o->accel == VAB_ACCEL_KVM) {
    ARG("-accel");
    ARG("kvm");
    ARG("-cpu");
    ARG("host");
  } else {
    ARG("-accel");
    ARG("tcg");
  }
  ARG("-m");
  snprintf(number, sizeof number, "%llu", (unsigned long long)mib);
  ARG(number);
  ARG("-smp");
  snprintf(number, sizeof number, "%u", cpus);
  ARG(number);
  ARG("-nodefaults");
  ARG("-display");
  ARG("none");
  ARG("-monitor");
  ARG("none");

  if (o->firmware == VAB_FW_UEFI) {
    if (buf_puts(&code, "if=pflash,format=raw,unit=0,readonly=on,file=") < 0 ||
        qemu_option_file_name(&code, vm->ovmf_code) < 0 ||
        buf_puts(&vars, "if=pflash,format=raw,unit=1,file=") < 0 ||
        qemu_option_file_name(&vars, vm->vars) < 0)
      goto nomem;
    ARG("-drive");
    ARG(code.data);
    ARG("-drive");
    ARG(vars.data);
  }

  if (buf_puts(&serial, "file,id=serial0,path=") < 0 ||
      qemu_escape(&serial, o->serial_log_path) < 0)
    goto nomem;
  ARG("-chardev");
  ARG(serial.data);
  ARG("-serial");
  ARG("chardev:serial0");

  if (buf_printf(&drive, "if=virtio,format=%s,cache=%s,file=",
                 o->disk_format ? o->disk_format : "qcow2",
                 o->cache ? o->cache : "unsafe") < 0 ||
      qemu_option_file_name(&drive, o->disk_path) < 0)
    goto nomem;
  ARG("-drive");
  ARG(drive.data);

  if (buf_puts(&net, "user,id=net0") < 0)
    goto nomem;
  for (size_t i = 0; i < o->n_ports; i++)
    if (buf_printf(&net, ",hostfwd=tcp:127.0.0.1:%u-:%u", vm->host_ports[i],
                   o->guest_ports[i]) < 0)
      goto nomem;
  ARG("-netdev");
  ARG(net.data);
  ARG("-device");
  ARG("virtio-net-pci,netdev=net0");
#undef ARG

  memset(vm->qemu_lines, 0, sizeof vm->qemu_lines);
  vm->qemu_partial_len = 0;
  if (subprocess_start(&vm->qemu, argv, NULL) < 0) {
    vab_error_errno(ctx, VAB_E_SUBPROCESS, errno,
                    "cannot start qemu-system-x86_64");
    goto out;
  }
  fcntl(vm->qemu.output_fd, F_SETFL,
        fcntl(vm->qemu.output_fd, F_GETFL) | O_NONBLOCK);
  r = 0;
  goto out;
nomem:
  vab_error(ctx, VAB_E_NOMEM, "out of memory");
out:
  free_argv(argv);
  buf_release(&drive);
  buf_release(&serial);
  buf_release(&net);
  buf_release(&code);
  buf_release(&vars);
  return r;
}

static void qemu_line(struct vab_vm *vm, const char *line) {
  vab_log(vm->ctx, VAB_LOG_DEBUG, "qemu: %s", line);
  memmove(vm->qemu_lines[0], vm->qemu_lines[1], sizeof vm->qemu_lines[0] * 2);
  snprintf(vm->qemu_lines[2], sizeof vm->qemu_lines[2], "%s", line);
}

void vab_vm_drain(struct vab_vm *vm) {
  if (vm->qemu.output_fd < 0)
    return;
  char chunk[1024];
  for (;;) {
    ssize_t n = read(vm->qemu.output_fd, chunk, sizeof chunk);
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; i++) {
      char c = chunk[i];
      if (c == '\n' || vm->qemu_partial_len == sizeof vm->qemu_partial - 1) {
        vm->qemu_partial[vm->qemu_partial_len] = '\0';
        if (vm->qemu_partial_len > 0)
          qemu_line(vm, vm->qemu_partial);
        vm->qemu_partial_len = 0;
      }
      if (c != '\n' && c != '\r')
        vm->qemu_partial[vm->qemu_partial_len++] = c;
    }
  }
}

bool vab_vm_exited(struct vab_vm *vm, int *status) {
  if (vm->qemu.pid <= 0)
    return true;
  pid_t r = waitpid(vm->qemu.pid, status, WNOHANG);
  if (r == vm->qemu.pid) {
    vm->qemu.pid = 0;
    return true;
  }
  return false;
}

const char *vab_vm_last_line(const struct vab_vm *vm) {
  return vm->qemu_lines[2];
}

static void kill_qemu(struct vab_vm *vm) {
  if (vm->qemu.pid > 0 || vm->qemu.output_fd >= 0) {
    vab_vm_drain(vm);
    subprocess_kill(&vm->qemu);
  }
}

void vab_vm_stop(struct vab_vm *vm) {
  kill_qemu(vm);
  if (vm->vars[0] != '\0')
    unlink(vm->vars);
  vm->vars[0] = '\0';
}

int vab_vm_start(struct vab_ctx *ctx, const struct vab_vm_opts *opts,
                 struct vab_vm *vm) {
  memset(vm, 0, sizeof *vm);
  vm->ctx = ctx;
  vm->qemu.pid = 0;
  vm->qemu.output_fd = -1;
  if (opts->n_ports > VAB_VM_MAX_PORTS)
    return vab_error(ctx, VAB_E_INTERNAL, "a VM forwards at most %d ports",
                     VAB_VM_MAX_PORTS);
  if (opts->firmware == VAB_FW_UEFI &&
      prepare_ovmf(vm, opts->work_dir ? opts->work_dir : "/var/tmp") < 0)
    return -1;
  /* This boot's output only, in a new file: a link planted at the name
   * is replaced, so qemu does not write through it. */
  int serial_fd = create_replacing(opts->serial_log_path, 0644);
  if (serial_fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno,
                           "cannot create the serial log '%s'",
                           opts->serial_log_path);
  close(serial_fd);
  for (int attempt = 1;; attempt++) {
    for (size_t i = 0; i < opts->n_ports; i++)
      if (vab_vm_free_port(ctx, &vm->host_ports[i]) < 0)
        return -1;
    if (start_qemu(vm, opts) < 0)
      return -1;
    /* A bad forwarding rule makes qemu exit at once. */
    int status = 0;
    for (int i = 0; i < 10 && !vab_vm_exited(vm, &status); i++) {
      struct timespec ts = {0, 50 * 1000000};
      nanosleep(&ts, NULL);
    }
    vab_vm_drain(vm);
    if (vm->qemu.pid > 0)
      return 0;
    kill_qemu(vm);
    bool port_taken = strstr(vm->qemu_lines[2], "host forwarding") != NULL;
    if (!port_taken || attempt == QEMU_START_ATTEMPTS) {
      char how[96];
      subprocess_describe_status(status, how, sizeof how);
      return vab_error(ctx, VAB_E_SUBPROCESS,
                       "qemu-system-x86_64 failed to start (%s): %s", how,
                       vm->qemu_lines[2][0] ? vm->qemu_lines[2] : "no output");
    }
  }
}

void vab_vm_serial_tail(struct buf *out, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    buf_printf(out, "\nserial log '%s': %s", path, strerror(errno));
    return;
  }
  struct stat st;
  char *data = malloc(65536);
  ssize_t n = -1;
  if (data != NULL && fstat(fd, &st) == 0) {
    off_t start = st.st_size > 65536 ? st.st_size - 65536 : 0;
    n = pread(fd, data, 65536, start);
  }
  close(fd);
  if (n < 0) {
    buf_printf(out, "\nserial log '%s': cannot read it", path);
    free(data);
    return;
  }
  /* Clean copy: drop ESC [ ... letter sequences and control bytes. */
  size_t len = 0;
  for (ssize_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)data[i];
    if (c == 0x1b) {
      if (i + 1 < n && data[i + 1] == '[') {
        i += 2;
        while (i < n && !((data[i] >= 'A' && data[i] <= 'Z') ||
                          (data[i] >= 'a' && data[i] <= 'z')))
          i++;
      }
      continue;
    }
    if (c == '\n' || c == '\t' || c >= 0x20)
      data[len++] = (char)c;
  }
  while (len > 0 && data[len - 1] == '\n')
    len--;
  size_t start = len;
  int lines = 0;
  while (start > 0) {
    if (data[start - 1] == '\n' && ++lines == SERIAL_TAIL_LINES)
      break;
    start--;
  }
  while (start < len && data[start] == '\n')
    start++;
  if (len == 0) {
    buf_printf(out, "\nserial log '%s' is empty", path);
  } else {
    buf_printf(out, "\nlast lines of the serial log '%s':\n", path);
    buf_append(out, data + start, len - start);
  }
  free(data);
}
