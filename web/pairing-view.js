// Pairing this browser (docs/protocol.md): a code typed in (or taken from the link), or a
// request the owner approves. Shown instead of the chat while the device is not paired;
// only transports with `pairing` (the gateway's) ever show it.

export class PairingView {
  constructor(doc, transport) {
    this.transport = transport;
    const $ = (id) => doc.getElementById(id);
    this.$ = {
      pairing: $("pairing"), form: $("pair-form"), code: $("pair-code"), error: $("pair-error"),
      requestAccess: $("request-access"), waiting: $("pair-waiting"), requestCode: $("request-code"),
      replaced: [$("chat"), $("sidebar"), $("sidebar-toggle")],
    };
  }

  bind() {
    const { $ } = this;
    $.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.redeem($.code.value);
    });
    $.requestAccess.addEventListener("click", () => this.requestAccess());
  }

  show(show) {
    this.$.pairing.hidden = !show;
    for (const node of this.$.replaced) node.hidden = show;
    if (show) this.$.code.focus();
  }

  error(message) {
    this.$.error.textContent = message;
    this.$.error.hidden = !message;
  }

  async redeem(code) {
    this.error("");
    try {
      await this.transport.pairing.redeem(code.trim());
    } catch (error) {
      this.error(error.message);
    }
  }

  async requestAccess() {
    const { $ } = this;
    this.error("");
    $.requestAccess.disabled = true;
    try {
      const { requestCode } = await this.transport.pairing.request((approved) => {
        $.waiting.hidden = true;
        $.requestAccess.disabled = false;
        if (!approved) this.error("The owner declined this device.");
      });
      $.requestCode.textContent = `${requestCode.slice(0, 4)}-${requestCode.slice(4)}`;
      $.waiting.hidden = false;
    } catch (error) {
      $.requestAccess.disabled = false;
      this.error(error.message);
    }
  }
}
