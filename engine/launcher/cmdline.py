"""A QEMU command line sorted into what the engine models and what it does not.

:func:`parse` reads ``qemu-system-* [OPTIONS]`` (the program name may be given or
not) the way QEMU reads it: options with an argument take the next word, others
stand alone, and an unknown option is an error in QEMU's words (``-foo: invalid
option``). Each option lands in one of three places:

* **modelled**: the block graph and the monitors (``-blockdev``, ``-drive``,
  ``-device`` of block devices, ``-object iothread``, ``-chardev``, ``-mon``,
  ``-qmp``, ``-qtest``);
* **accepted**: options about the machine, the display and the like, which shape no
  part of the block graph and are taken without effect (``-machine``, ``-accel``,
  ``-nodefaults``, ``-display``, ``-S``...);
* **unmodelled**: options QEMU knows that would change what a VM has but that the
  engine does not model (``-netdev``, a network or display device...). The launcher
  refuses them; the editor names them next to the graph it draws.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field

from engine.launcher.opts import split_opts

#: QEMU's name in its own error messages
PROGRAM = "qemu-system-x86_64"

#: options whose effects the launcher builds
MODELLED = {"-blockdev", "-drive", "-device", "-object", "-chardev", "-mon", "-qmp",
            "-qmp-pretty", "-qtest", "-cdrom", "-hda", "-hdb", "-hdc", "-hdd",
            "-monitor"}
#: options with an argument that shape nothing the block graph shows
ACCEPTED_WITH_ARG = {"-display", "-machine", "-M", "-accel", "-vga", "-serial", "-name",
                     "-m", "-smp", "-cpu", "-uuid", "-msg", "-overcommit", "-sandbox",
                     "-rtc", "-boot", "-k", "-L", "-bios", "-pidfile", "-D", "-d",
                     "-qtest-log", "-trace", "-global", "-smbios", "-parallel",
                     "-sdl", "-g", "-action", "-compat", "-icount", "-plugin"}
ACCEPTED_FLAGS = {"-nodefaults", "-S", "-no-user-config", "-no-shutdown", "-nographic",
                  "-enable-kvm", "-no-reboot", "-no-hpet", "-no-acpi", "-daemonize",
                  "-full-screen", "-snapshot", "-preconfig"}
#: options QEMU has (with an argument) that the engine does not model
UNMODELLED_WITH_ARG = {"-netdev", "-nic", "-net", "-fda", "-fdb", "-mtdblock", "-sd",
                       "-pflash", "-incoming", "-add-fd", "-fsdev", "-virtfs", "-usbdevice",
                       "-audiodev", "-spice", "-vnc", "-numa", "-mem-path", "-loadvm",
                       "-kernel", "-initrd", "-append", "-dtb", "-fw_cfg", "-option-rom",
                       "-iscsi", "-watchdog-action", "-semihosting-config", "-tpmdev",
                       "-chroot", "-runas", "-run-with", "-seccomp", "-object-add"}
UNMODELLED_FLAGS = {"-usb", "-no-fd-bootchk", "-mem-prealloc", "-s", "-enable-fips",
                    "-old-param", "-only-migratable", "-portrait", "-alt-grab",
                    "-ctrl-grab", "-no-quit", "-semihosting", "-win2k-hack"}
#: help queries the launcher answers (option -> argument that asks for help)
HELP_OPTIONS = {"-machine", "-M", "-device", "-drive", "-accel", "-cpu", "-object",
                "-display", "-chardev"}

#: -device drivers that are block devices (a drive= property makes a BlockBackend)
BLOCK_DEVICES = {"virtio-blk", "virtio-blk-pci", "virtio-blk-device", "scsi-hd", "scsi-cd",
                 "scsi-block", "ide-hd", "ide-cd", "ide-drive", "floppy", "usb-storage",
                 "nvme", "pflash"}
#: -device drivers that carry block devices (buses) and are taken for their children
BUS_DEVICES = {"virtio-scsi", "virtio-scsi-pci", "virtio-scsi-device", "ide-bus", "ahci",
               "ich9-ahci", "piix3-ide", "piix4-ide", "lsi53c895a", "usb-ehci",
               "nec-usb-xhci", "qemu-xhci", "pcie-root-port", "pci-bridge",
               "pcie-pci-bridge", "i82801b11-bridge", "piix3-usb-uhci", "ich9-usb-ehci1",
               "ich9-usb-uhci1", "ich9-usb-uhci2", "ich9-usb-uhci3", "isa-fdc"}


class CommandLineError(ValueError):
    """A command line QEMU would refuse; the text is QEMU's (without the program name)."""


@dataclass
class Option:
    """One option as given: its name and its argument (None for a flag)."""

    name: str
    arg: str | None = None

    def text(self) -> str:
        """The option as it was written (for messages)."""
        return self.name if self.arg is None else f"{self.name} {self.arg}"


@dataclass
class CommandLine:
    """A command line sorted: the options in order, by what happens to them."""

    modelled: list[Option] = field(default_factory=list)
    accepted: list[Option] = field(default_factory=list)
    unmodelled: list[Option] = field(default_factory=list)
    help: Option | None = None
    program: str = PROGRAM

    def of(self, *names: str) -> list[Option]:
        """The modelled options called one of ``names``, in order."""
        return [o for o in self.modelled if o.name in names]


def split_words(text: str) -> list[str]:
    """Words of a command line as pasted: shell quoting, backslash-newlines, and
    libvirt's log prefix of environment assignments (``LC_ALL=C PATH=... qemu ...``)."""
    words = shlex.split(text.replace("\\\n", " "), comments=False)
    while words and "=" in words[0] and not words[0].startswith("-"):
        words.pop(0)
    return words


def program_of(text: str) -> str:
    """The program a pasted command line runs (QEMU's name when it cannot be told)."""
    try:
        words = split_words(text)
    except ValueError:
        return PROGRAM
    return os.path.basename(words[0]) if words and not words[0].startswith("-") else PROGRAM


def parse(words: list[str]) -> CommandLine:
    """Sort ``words`` (with or without the program name first) into a CommandLine."""
    line = CommandLine()
    i = 0
    if words and not words[0].startswith("-"):
        line.program = os.path.basename(words[0])
        i = 1
    while i < len(words):
        word = words[i]
        name = "-" + word.lstrip("-") if word.startswith("-") else word
        if not word.startswith("-"):
            # a lone word is a disk image, as -hda
            line.modelled.append(Option("-hda", word))
            i += 1
            continue
        takes_arg = name in MODELLED or name in ACCEPTED_WITH_ARG or name in UNMODELLED_WITH_ARG
        flag = name in ACCEPTED_FLAGS or name in UNMODELLED_FLAGS
        if not takes_arg and not flag:
            raise CommandLineError(f"{word}: invalid option")
        arg = None
        if takes_arg:
            if i + 1 >= len(words):
                raise CommandLineError(f"{word}: requires an argument")
            arg = words[i + 1]
            i += 2
        else:
            i += 1
        option = Option(name, arg)
        if arg is not None and name in HELP_OPTIONS and _asks_help(name, arg):
            line.help = option
        if name in MODELLED:
            if (name == "-device" and not _block_related_device(arg or "")) or (
                    name == "-object" and not _modelled_object(arg or "")):
                line.unmodelled.append(option)
            else:
                line.modelled.append(option)
        elif name in ACCEPTED_WITH_ARG or name in ACCEPTED_FLAGS:
            line.accepted.append(option)
        else:
            line.unmodelled.append(option)
    return line


def _asks_help(name: str, arg: str) -> bool:
    if name == "-drive":
        return ("format", "help") in split_opts(arg)
    if arg in ("help", "?"):
        return True
    return name == "-device" and split_opts(arg, implied="driver")[1:2] == [("help", "on")]


def properties(arg: str, implied: str) -> dict[str, str]:
    """A ``-device``/``-object`` argument's properties: QemuOpts (``virtio-blk,drive=d``,
    the first word naming ``implied``) or JSON as libvirt writes it
    (``{"driver":"virtio-blk-pci","drive":"d"}``); values as strings, booleans on/off."""
    if arg.lstrip().startswith("{"):
        try:
            value = json.loads(arg)
        except json.JSONDecodeError:
            raise CommandLineError(f"{arg}: JSON parse error") from None
        if not isinstance(value, dict):
            raise CommandLineError(f"{arg}: JSON parse error, expected an object")
        return {k: ("on" if v is True else "off" if v is False else
                    v if isinstance(v, str) else json.dumps(v) if isinstance(v, dict | list)
                    else str(v)) for k, v in value.items()}
    return dict(split_opts(arg, implied=implied))


def _block_related_device(arg: str) -> bool:
    driver = properties(arg, "driver").get("driver", "")
    return driver in BLOCK_DEVICES or driver in BUS_DEVICES or driver == "help"


def _modelled_object(arg: str) -> bool:
    return properties(arg, "qom-type").get("qom-type") in ("iothread", "help")
