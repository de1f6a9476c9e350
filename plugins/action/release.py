# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of stackops.platform.release: with upload_dir, send src from the controller in the same task.

Without upload_dir the module runs as any module does (src on the managed host), with no round trip added.
With upload_dir: the checks that need no host (src a file on the controller, sha256 given and well formed, state
deployed) fail before anything is sent; then src goes once into a remote temporary directory under its own file
name, and the module runs once with src pointing at that upload. It checks the upload against sha256, places the
copy in upload_dir and builds the release (see the module's documentation). The temporary directory is removed
afterwards, whatever happened. Check mode sends nothing: the module then only plans (it needs src's file name).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.stackops.platform.plugins.module_utils.release_archive import sha256_file
from ansible_collections.stackops.platform.plugins.module_utils.release_names import ReleaseError, normalize_sha256

MODULE = "stackops.platform.release"


class ActionModule(ActionBase):
    # No remote tmp directory up front: only an upload needs one (made in _upload), and with pipelining a plain
    # module run needs none.
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # no longer has any effect
        if not self._task.args.get("upload_dir"):
            return self._run_module(result, task_vars)
        try:
            module_args = self._upload_args()
            return merge_hash(result, self._execute_module(MODULE, module_args=module_args, task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _run_module(self, result, task_vars):
        """Like ansible.builtin.normal: the module with the task's arguments (async too)."""
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(MODULE, task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _controller_file(self, src):
        if not src:
            raise AnsibleActionFail("src is required: with upload_dir, the archive file on the controller to send")
        try:
            found = self._find_needle("files", os.path.expanduser(str(src)))
        except AnsibleError as exc:
            raise AnsibleActionFail(
                f"src {src} not found on the controller (with upload_dir, src is an archive file on the controller, "
                f"sent to the host): {exc.message}"
            ) from None
        if os.path.isdir(found):
            raise AnsibleActionFail(f"src {found} is a directory; with upload_dir, src must be an archive file")
        return found

    def _upload_args(self):
        """The module's arguments with src pointing at the upload (in check mode, nothing sent)."""
        args = dict(self._task.args)
        if self._task.async_val:
            raise AnsibleActionFail("upload_dir does not work with async: run the task without async")
        state = args.get("state") or "deployed"
        if state != "deployed":
            raise AnsibleActionFail(f"upload_dir applies to state=deployed only, not state={state}")
        upload_dir = str(args["upload_dir"])
        if not upload_dir.startswith(("/", "~", "$")):
            raise AnsibleActionFail(f"upload_dir {upload_dir!r} must be an absolute path on the managed host")
        try:
            expected = normalize_sha256(args.get("sha256"))
        except ReleaseError as exc:
            raise AnsibleActionFail(exc.msg) from None
        if not expected:
            raise AnsibleActionFail(
                "upload_dir needs sha256: the expected SHA-256 of the archive src, checked on the host after the upload"
            )
        found = self._controller_file(args.get("src"))
        local = self._loader.get_real_file(found, decrypt=True)  # a vault-encrypted archive is sent decrypted
        try:
            if self._task.check_mode:
                # Nothing is sent: the module takes only the file name from src, and plans. The controller's file
                # is checked here instead (no round trip), so check mode reports the mismatch a real run would hit.
                actual = sha256_file(local)
                if actual != expected:
                    raise AnsibleActionFail(
                        f"checksum mismatch for src {found} on the controller: expected sha256 {expected}, got "
                        f"{actual}; nothing was sent (check mode)"
                    )
                args["src"] = found
                return args
            tmpdir = self._make_tmp_path()
            remote = self._connection._shell.join_path(tmpdir, os.path.basename(found))
            self._transfer_file(local, remote)
        finally:
            self._loader.cleanup_tmp_file(local)
        # Readable for a become user other than the connection's. No round trip when the module runs as the
        # connection user or as root (execute=False: the upload is data, not a program).
        self._fixup_perms2((tmpdir, remote), execute=False)
        args["src"] = remote
        return args
