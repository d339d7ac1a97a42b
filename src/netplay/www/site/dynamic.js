// Fills in dynamic.html from stock.json: the page is only complete after this runs.
fetch("stock.json")
  .then((response) => response.json())
  .then((items) => {
    const list = document.getElementById("stock");
    for (const item of items) {
      const li = document.createElement("li");
      li.className = "item";
      li.textContent = `${item.name}: ${item.stock} in stock`;
      list.appendChild(li);
    }
    document.getElementById("status").textContent = `${items.length} products`;
  });
