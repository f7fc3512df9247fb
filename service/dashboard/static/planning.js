// The key-result builder without a round trip: when a condition's field changes (a ratio's numerator rows and its
// denominator rows alike), its operator list becomes that field's operators and its value input offers that field's
// values (the datalist the page rendered). Without this script the form works the same: "Show the fields of these
// records" renders them on the server.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const builder = document.getElementById("builder");
  if (!builder) return;
  builder.querySelectorAll("select[data-condition]").forEach((fieldSelect) => {
    fieldSelect.addEventListener("change", () => {
      const n = fieldSelect.dataset.condition;
      const prefix = fieldSelect.dataset.prefix || "";
      const lists = fieldSelect.dataset.lists || "values-";
      const chosen = fieldSelect.selectedOptions[0];
      const opSelect = builder.querySelector(`select[name="${prefix}op_${n}"]`);
      const value = builder.querySelector(`input[name="${prefix}value_${n}"]`);
      const ops = chosen && chosen.dataset.ops ? chosen.dataset.ops.split(" ") : [];
      if (opSelect && ops.length) {
        const current = opSelect.value;
        opSelect.replaceChildren(...ops.map((op) => new Option(op, op, false, op === current)));
      }
      const list = document.getElementById(`${lists}${fieldSelect.value.replaceAll(".", "-")}`);
      if (value) {
        if (list) value.setAttribute("list", list.id);
        else value.removeAttribute("list");
      }
    });
  });
});
