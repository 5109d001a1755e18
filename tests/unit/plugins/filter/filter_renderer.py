# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Call a filter plugin from a template, the way a play does: one renderer for every filter's tests."""

from __future__ import annotations

from ansible.utils.collection_loader import AnsibleCollectionConfig


def template_renderer(filter_module):
    """``render(expression, **variables)``: the value of ``{{ expression }}``.

    Under ansible-test units the collection loader is installed and Ansible's
    own Templar resolves ``berth.ports.<name>`` through the filter loader;
    under plain pytest a Jinja2 native environment carries ``filter_module``'s
    filters under the same dotted names, so the call is parsed and dispatched
    the way Jinja does it.
    """
    if AnsibleCollectionConfig.collection_finder is not None:
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar

        try:
            from ansible.template import trust_as_template
        except ImportError:  # ansible-core < 2.19 templates every string

            def trust_as_template(text):
                return text

        def with_ansible(expression, **variables):
            templar = Templar(loader=DataLoader(), variables=variables)
            return templar.template(trust_as_template("{{ %s }}" % expression))

        return with_ansible

    from jinja2.nativetypes import NativeEnvironment

    env = NativeEnvironment()
    for name, function in filter_module.FilterModule().filters().items():
        env.filters["berth.ports." + name] = function

    def with_jinja(expression, **variables):
        return env.from_string("{{ %s }}" % expression).render(**variables)

    return with_jinja
