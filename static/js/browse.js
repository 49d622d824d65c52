// Changing a filter of the module list applies it at once; the Apply button
// stays for keyboard users and for browsers without JavaScript.
document.querySelectorAll("#search-form select").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});

// Copy buttons of code snippets on module pages.
document.querySelectorAll("[data-copy]").forEach((button) => {
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    await navigator.clipboard.writeText(source.textContent);
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
