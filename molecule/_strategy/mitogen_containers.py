"""Molecule's strategy under scripts/test.sh: Mitogen's linear strategy for the plays on the containers.

Stock Ansible starts a ``docker exec`` and a Python interpreter for every task; on a loaded 2-core CI
machine each costs seconds. Mitogen keeps one interpreter per container for the whole play.
Plays on the controller (``connection: local``: Molecule's own create and destroy) run stock linear:
under Mitogen their async ``docker_container`` jobs never report back.
"""

import ansible_mitogen.loaders  # Ansible's plugin loaders, wrapped before the strategy module loads
import ansible_mitogen.strategy

StockLinear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, StockLinear):
    def run(self, iterator, play_context, result=0):
        # The play's own keyword: play_context still holds the default (ssh) here.
        if iterator._play.connection in ("local", "ansible.builtin.local"):
            return StockLinear.run(self, iterator, play_context)
        return super().run(iterator, play_context)
