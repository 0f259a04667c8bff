# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The cases of run.sh that hold on the kata backend as they are written.  The
# rest assert container-specific answers (the dev profile's host backend,
# runc's masked paths) or need the guest seccomp filter to be in place.
for c in t_environment_and_fds t_host_secret_file t_network_host_loopback t_nothing_persists \
    t_become_root_standard t_become_root_hardened t_privileged_calls_standard \
    t_fork_bomb_standard t_fork_bomb_hardened t_fork_bomb_shell t_memory_bomb_standard t_memory_bomb_hardened \
    t_disk_fill_standard t_disk_fill_hardened t_output_flood t_infinite_loop_timeout; do
    register_case kata "$c"
done
