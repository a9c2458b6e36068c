/* The sysprep stage (see sysprep.h).
 *
 * Every operation but "trim" is a few lines of shell run in the guest's
 * chroot; the chosen ones are joined into one script, because each guest
 * command costs a round trip to the builder VM (slow under TCG). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vab/progress.h"
#include "common/buf.h"
#include "builder/sysprep.h"

/* Regenerates the host keys that "ssh-hostkeys" removes, once, at the
 * first boot of each VM, before sshd starts. */
static const char ssh_keygen_unit[] =
  "[Unit]\n"
  "Description=Generate SSH host keys (vab sysprep)\n"
  "Before=ssh.service ssh.socket\n"
  "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n"
  "\n"
  "[Service]\n"
  "Type=oneshot\n"
  "ExecStart=/usr/bin/ssh-keygen -A\n"
  "\n"
  "[Install]\n"
  "WantedBy=multi-user.target\n";

struct sysprep_op {
  const char *name;
  const char *script;
};

static const struct sysprep_op ops[] = {
  /* An empty machine-id makes systemd generate a new one at first boot
   * (and treat that boot as the first). */
  {"machine-id",
   "if [ -e /etc/machine-id ]; then : > /etc/machine-id; fi\n"
   "if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; "
   "then rm -f /var/lib/dbus/machine-id; fi\n"},
  {"ssh-hostkeys",
   "rm -f /etc/ssh/ssh_host_*\n"
   "if [ -x /usr/bin/ssh-keygen ]; then\n"
   "  mkdir -p /etc/systemd/system/multi-user.target.wants\n"
   "  ln -sf /etc/systemd/system/vab-ssh-hostkeys.service "
   "/etc/systemd/system/multi-user.target.wants/vab-ssh-hostkeys.service\n"
   "else\n"
   "  rm -f /etc/systemd/system/vab-ssh-hostkeys.service\n"
   "fi\n"},
  /* Logs are emptied rather than deleted: services expect their files
   * with their owners. */
  {"logs",
   "if [ -d /var/log ]; then\n"
   "  find /var/log -type f \\( -name '*.gz' -o -name '*.[0-9]' -o "
   "-name '*.old' \\) -delete\n"
   "  find /var/log -type f -exec truncate -s 0 {} +\n"
   "  if [ -d /var/log/journal ]; then find /var/log/journal -mindepth 1 "
   "-delete; fi\n"
   "fi\n"},
  {"apt-cache",
   "if [ -d /var/lib/apt/lists ]; then\n"
   "  find /var/lib/apt/lists -mindepth 1 -delete\n"
   "  mkdir -p /var/lib/apt/lists/partial\n"
   "fi\n"
   "rm -f /var/cache/apt/*.bin /var/cache/apt/archives/*.deb "
   "/var/cache/apt/archives/partial/*\n"},
  /* The step scripts' own folder (.vab-run) goes when the script ends. */
  {"tmp",
   "for d in /tmp /var/tmp; do\n"
   "  [ -d \"$d\" ] && find \"$d\" -mindepth 1 -maxdepth 1 ! -name .vab-run "
   "-exec rm -rf {} +\n"
   "done\n"
   "true\n"},
  {"bash-history",
   "for h in /root /home/*; do\n"
   "  [ -d \"$h\" ] || continue\n"
   "  rm -f \"$h/.bash_history\" \"$h/.sh_history\" \"$h/.zsh_history\" "
   "\"$h/.python_history\" \"$h/.lesshst\" \"$h/.viminfo\"\n"
   "done\n"},
  {"dhcp-leases",
   "rm -rf /var/lib/dhcp/*.leases /var/lib/dhcp/dhclient* "
   "/var/lib/dhclient/* /var/lib/NetworkManager/*.lease "
   "/var/lib/systemd/network/*\n"},
  {"random-seed",
   "rm -f /var/lib/systemd/random-seed /var/lib/urandom/random-seed "
   "/var/lib/random-seed\n"},
  /* Not a script: fstrim runs from the builder VM after the others. */
  {"trim", NULL},
};

#define N_OPS (sizeof ops / sizeof ops[0])

static const char *op_names[N_OPS + 1];
static pthread_once_t op_names_once = PTHREAD_ONCE_INIT;

static void fill_op_names(void) {
  for (size_t i = 0; i < N_OPS; i++)
    op_names[i] = ops[i].name;
  op_names[N_OPS] = NULL;
}

const char *const *vab_sysprep_operations(void) {
  pthread_once(&op_names_once, fill_op_names);
  return op_names;
}

static bool chosen(const struct vab_sysprep *sysprep, const char *name) {
  for (size_t i = 0; i < sysprep->n_operations; i++)
    if (strcmp(sysprep->operations[i], name) == 0)
      return true;
  return false;
}

/* Walk the table, not the template's list: the schema took the names from
 * this table, and table order is run order ("trim" last). */
int vab_sysprep_plan(struct vab_ctx *ctx, const struct vab_sysprep *sysprep,
                     struct vab_sysprep_plan *plan) {
  memset(plan, 0, sizeof *plan);
  struct buf script = BUF_INIT;
  struct buf names = BUF_INIT;
  int r = buf_puts(&script, "set -e\n");
  for (size_t i = 0; i < N_OPS && r == 0; i++) {
    const struct sysprep_op *op = &ops[i];
    if (!chosen(sysprep, op->name))
      continue;
    if (names.len > 0)
      r = buf_puts(&names, ", ");
    if (r == 0)
      r = buf_puts(&names, op->name);
    if (op->script == NULL) {
      plan->trim = true;
      continue;
    }
    plan->ssh_hostkeys |= strcmp(op->name, "ssh-hostkeys") == 0;
    if (r == 0)
      r = buf_printf(&script, "echo 'sysprep: %s'\n%s", op->name, op->script);
  }
  if (r < 0) {
    buf_release(&script);
    buf_release(&names);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  plan->script = script.data;
  plan->names = names.data;
  return 0;
}

void vab_sysprep_plan_release(struct vab_sysprep_plan *plan) {
  free(plan->script);
  free(plan->names);
  memset(plan, 0, sizeof *plan);
}

int vab_sysprep_run(struct vab_ctx *ctx, const struct vab_sysprep *sysprep,
                    struct vab_guest *g) {
  vab_guest_set_phase(g, VAB_PHASE_SYSPREP);
  if (!sysprep->enabled || sysprep->n_operations == 0) {
    vab_log(ctx, VAB_LOG_INFO, "sysprep: off");
    return 0;
  }
  struct vab_sysprep_plan plan;
  if (vab_sysprep_plan(ctx, sysprep, &plan) < 0)
    return -1;
  vab_log(ctx, VAB_LOG_INFO, "sysprep: %s", plan.names ? plan.names : "");
  if (plan.ssh_hostkeys &&
      (vab_guest_mkdir_p(g, "/etc/systemd/system") < 0 ||
       vab_guest_write(g, "/etc/systemd/system/vab-ssh-hostkeys.service",
                       ssh_keygen_unit, strlen(ssh_keygen_unit)) < 0)) {
    vab_sysprep_plan_release(&plan);
    return -1;
  }
  int status = 0;
  bool trim = plan.trim;
  int r = vab_guest_script(g, plan.script, NULL, &status);
  vab_sysprep_plan_release(&plan);
  if (r < 0)
    return -1;
  if (status != 0) {
    vab_error_at(ctx, VAB_E_GUEST, &sysprep->mark,
                 "sysprep failed in the guest (exit status %d)", status);
    if (*vab_guest_output_tail(g) != '\0')
      vab_diag_hint(ctx, "its last output lines:\n%s",
                    vab_guest_output_tail(g));
    return -1;
  }
  if (trim) {
    vab_log(ctx, VAB_LOG_INFO, "sysprep: trimming free space");
    if (vab_guest_trim(g, "/") < 0)
      return -1;
  }
  return 0;
}
